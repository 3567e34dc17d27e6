"""Runs cut off at any point (the client killed, its SSH connections dropped) leave nothing
half-written, and the next run finishes the job."""
import os
import signal
import subprocess
import sys
import time
import urllib.request

from .conftest import ROOT

ARGS = ("--machine", "crashy", "--env", "prod")
CHAIN = " && ".join(f"{sys.executable} -m invoke {task} {' '.join(ARGS)}{extra}"
                    for task, extra in (("nas.setup", ""), ("machine.setup", ""),
                                        ("service.deploy", " --service hello")))


def test_killed_runs_then_a_full_run_converges(lab, e2e_cli):
    env = e2e_cli.env()
    for delay in (0.4, 0.9, 1.5, 2.2, 3.0):
        p = subprocess.Popen(["sh", "-c", CHAIN], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        time.sleep(delay)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    time.sleep(1)  # commands that were running on the hosts finish or die
    for task, extra in (("nas.setup", ()), ("machine.setup", ()), ("service.deploy", ("--service", "hello"))):
        e2e_cli.inv(task, *ARGS, *extra)
    for task, extra in (("nas.setup", ()), ("machine.setup", ()), ("service.deploy", ("--service", "hello"))):
        again = e2e_cli.inv(task, *ARGS, *extra)
        assert all(s["changed"] == 0 for s in again.summaries.values()), again.stdout
    assert e2e_cli.inv("machine.status", *ARGS).returncode == 0
    body = urllib.request.urlopen(f"http://{lab.ip('homelab2')}:20700/", timeout=10).read().decode()
    assert "hello from crashy-prod (uid 20700)" in body
    leftovers = lab.run("ds412plus", "find /volume1/racesheet/crashy /etc -name '*.tinsnip-new'").stdout
    leftovers += lab.run("homelab2", "find /etc /mnt/crashy-prod/ -name '*.tinsnip-new'").stdout
    assert leftovers.strip() == ""
    fstab = lab.read("homelab2", "/etc/fstab").splitlines()
    assert sum("/var/lib/tinsnip/crashy-prod/nfs " in line for line in fstab) == 1
