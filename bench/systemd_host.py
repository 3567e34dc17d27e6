"""Benchmark: the systemd host homelab3 (systemd-nspawn). Prints figures; asserts nothing.

    python3 bench/systemd_host.py      # takes the lab down and up again, leaves it up

- ``lab.up`` with both root filesystems cached (from a lab that is down);
- homelab3's boot: systemd's own figure (``systemd-analyze``) and until sshd answers;
- the flow for gateway prod on homelab3 (first run, no-op run);
- ``lab.reboot`` of homelab3 and of homelab1, and homelab3 until the service answers again;
- memory of homelab3 (proportional set size of every process in its namespaces), idle and
  with the rootless daemon and one container.
"""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinsnip_lab as lab  # noqa: E402
from tinsnip_lab import hosts, remote  # noqa: E402

GW = ("--machine", "gateway", "--env", "prod")
QUIET = {"log": lambda *_: None}


def inv(*args):
    env = {**os.environ, "TINSNIP_LAB": "1"}
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True)
    return time.monotonic() - started, [l for l in p.stdout.splitlines() if "homelab3:" in l]


def pss_mib(host):
    """Sum of the proportional set size of every process in ``host``'s network namespace and
    below it (rootless daemons and containers live in namespaces of their own)."""
    top = set(hosts.pids_of(host))
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo, seen = list(top), set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    total = 0
    for pid in seen:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024, len(seen)


def answers(url, timeout=60):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    return float("nan")


def main():
    lab.down(**QUIET)
    lab.up(**QUIET)  # builds anything missing, so the next start is the cached one
    lab.down(**QUIET)
    started = time.monotonic()
    lab.up(**QUIET)
    print(f"lab.up, both root filesystems cached: {time.monotonic() - started:.2f} s "
          f"({len(lab.LAB_HOSTS)} hosts, homelab3 booted to multi-user)")
    print("homelab3 boot (systemd-analyze):",
          remote.run_root("homelab3", "systemd-analyze | head -n 1").strip())
    mib, n = pss_mib("homelab3")
    print(f"homelab3 memory, idle: {mib:.0f} MiB PSS in {n} processes")
    inv("nas.station", "--sheet", "dynamicalsystem")
    inv("nas.setup", *GW)
    for label in ("first run", "no-op run"):
        t1, setup = inv("machine.setup", *GW)
        t2, deploy = inv("service.deploy", *GW, "--service", "hello")
        print(f"gateway prod on homelab3, {label}: machine.setup {t1:.1f} s {setup}; "
              f"service.deploy {t2:.1f} s {deploy}")
    url = f"http://{lab.LAB_HOSTS['homelab3']}:10300/"
    answers(url)
    mib, n = pss_mib("homelab3")
    print(f"homelab3 memory with the daemon and one container: {mib:.0f} MiB PSS in {n} processes")
    for host in ("homelab3", "homelab1"):
        times = lab.reboot(host, **QUIET)
        print(f"lab.reboot {host}: down {times['down']:.2f} s, sshd again {times['up']:.2f} s later")
        if host == "homelab3":
            print(f"  service on homelab3 answers {answers(url):.2f} s after sshd, "
                  f"with no tinsnip run")


if __name__ == "__main__":
    main()
