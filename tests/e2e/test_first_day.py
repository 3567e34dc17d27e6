"""A homelab's first day against the lab's hosts: addresses from the SSH config, machine.setup
before nas.setup refused before anything changes, a never set up environment in status, and
the fixes named for the program that runs."""
import signal
import subprocess
import sys
import time

import pytest
import yaml

from .conftest import E2E_INVENTORY, ROOT, Cli

MACHINE, ENV = "firstday", "prod"
ARGS = ("--machine", MACHINE, "--env", ENV)
NAS_DIR = f"/volume1/racesheet/{MACHINE}/{ENV}"


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    data = yaml.safe_load(E2E_INVENTORY.read_text())
    data["machines"][MACHINE] = {"sheet": "racesheet", "host": "homelab1",
                                 "environments": [ENV], "number": 61,
                                 "services": {"hello": {"http": 0}}}
    path = tmp_path_factory.mktemp("firstday") / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return Cli(path)


def test_machine_setup_before_nas_setup_changes_nothing_and_names_nas_setup(lab, first):
    p = first.inv("machine.setup", *ARGS, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"does not export {NAS_DIR} to {lab.ip('homelab1')} yet" in p.stderr
    assert f"run `inv nas.setup --machine {MACHINE} --env {ENV}` first" in p.stderr
    assert not lab.run("homelab1", f"id {MACHINE}-{ENV}", warn=True).ok
    assert f"/mnt/{MACHINE}-{ENV}" not in lab.read("homelab1", "/etc/fstab")
    dry = first.inv("machine.setup", *ARGS, "--dry", check=False)
    assert dry.returncode == 1 and "machine.user" in dry.stdout  # the plan, under the failure


def test_status_of_an_environment_never_set_up_is_one_clear_item(lab, first):
    p = first.inv("machine.status", *ARGS, check=False)
    assert p.returncode == 1
    failed = [s for h in p.recap["hosts"].values() for s in h["steps"] if s["status"] == "failed"]
    assert [s["step"] for s in failed] == ["status.user"], failed
    assert f"run `inv machine.setup --machine {MACHINE} --env {ENV}`" in failed[0]["detail"]
    assert "unknown user" not in p.stdout + p.stderr


def test_after_nas_setup_the_hosts_name_each_other_by_address(lab, first):
    first.inv("nas.setup", *ARGS)
    p = first.inv("machine.setup", *ARGS)
    assert "machine.export" in p.stdout
    exports = lab.read("ds412plus", "/etc/exports").splitlines()
    assert any(l.startswith(f"{NAS_DIR} {lab.ip('homelab1')}(rw,") for l in exports), exports
    fstab = lab.read("homelab1", "/etc/fstab")
    # the export is mounted behind the gate that /mnt/M-E leads through
    assert f"{lab.ip('ds412plus')}:{NAS_DIR} /var/lib/tinsnip/{MACHINE}-{ENV}/nfs nfs " in fstab
    status = first.inv("machine.status", *ARGS, check=False)
    mount = [s for h in status.recap["hosts"].values() for s in h["steps"]
             if s["step"] == "status.mount"]
    assert mount and mount[0]["status"] == "ok", status.stdout
    again = first.inv("machine.setup", *ARGS, "-v")
    assert all(s["changed"] == 0 for s in again.summaries.values()), again.stdout
    # -v: the commands as a person reads them, not the protocol the facts travel in
    assert f"homelab1| $ read facts: user {MACHINE}-{ENV} (26100)" in again.stderr, again.stderr
    assert "ds412plus| $ cat /etc/exports" in again.stderr
    assert "@@tinsnip" not in again.stderr


def test_fab_names_itself_in_the_fixes(lab, first):
    lab.run("homelab1", f"umount /mnt/{MACHINE}-{ENV}", warn=True)
    try:
        p = first.fab("-H", "homelab1", "machine.status", *ARGS, check=False)
        assert f"`fab machine.mount --machine {MACHINE} --env {ENV}`" in p.stdout, p.stdout
    finally:
        first.inv("machine.mount", *ARGS)


def test_logs_follow_streams_until_ctrl_c_with_only_logs_on_stdout(lab, first):
    first.inv("service.deploy", *ARGS, "--service", "hello")
    p = subprocess.Popen([sys.executable, "-m", "invoke", "service.logs", *ARGS, "--service",
                          "hello", "--follow", "--tail", "1"], cwd=ROOT, env=first.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(4)  # connected and following by now (slow machines: the marker waits)
        docker = (f"sudo -u {MACHINE}-{ENV} env DOCKER_HOST=unix:///run/user/26100/docker.sock "
                  "docker")
        for n in range(3):  # a line written by the container after the follow began
            lab.run("homelab1", f"{docker} exec $({docker} ps -q | head -n 1) sh -c "
                                f"'echo follow-marker-{n} > /proc/1/fd/1'")
            time.sleep(1)
        assert p.poll() is None, "the follow ended by itself"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "follow-marker-2" in out
    assert "==" not in out and "ok=" not in out  # the title and recap are on stderr
    assert "ok=" in err


def test_teardown(lab, first):
    first.inv("machine.teardown", *ARGS)
    first.inv("nas.remove", *ARGS, "--purge")
