"""Benchmark: SSH round trips (Fabric defaults vs tinsnip's tuning) and the flow's summary
lines for a first run and a no-op re-run, on the built-in lab. Prints figures; asserts nothing.

    python3 bench/ssh_and_flow.py          # brings the lab up if needed, leaves it up
"""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import fabric
from paramiko import RejectPolicy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinsnip_lab as lab  # noqa: E402
from tinsnip_tasks.connect import connect  # noqa: E402

N = 200


def per_command_ms(conn, n=N):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn.run("true", hide=True, in_stream=False)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1]


def fabric_default(host):
    conn = fabric.Connection(host, config=fabric.Config(runtime_ssh_path=str(lab.ssh_config_path())))
    conn.client.load_host_keys(str(lab.known_hosts_path()))
    conn.client.set_missing_host_key_policy(RejectPolicy())
    return conn


def inv(*args):
    env = {**os.environ, "TINSNIP_LAB": "1"}
    p = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True)
    return [l for l in p.stdout.splitlines() if "commands=" in l]


def main():
    lab.up(log=lambda *_: None)
    for name, conn in (("fabric defaults", fabric_default("homelab1")),
                       ("tinsnip (TCP_NODELAY, waits on events)", connect("homelab1", lab.ssh_profile()))):
        med, p95 = per_command_ms(conn)
        print(f"{name:<45} median {med:6.1f} ms   p95 {p95:6.1f} ms   ({N} x `true`)")
        conn.close()
    gm = ("--machine", "gazette", "--env", "test")
    for label in ("first run", "no-op re-run"):
        t = time.perf_counter()
        lines = []
        for task in (("nas.setup", *gm), ("machine.setup", *gm),
                     ("service.deploy", *gm, "--service", "hello")):
            lines += [f"  {task[0]:<15} {l}" for l in inv(*task)]
        print(f"{label}: {time.perf_counter() - t:.1f} s wall for nas.setup + machine.setup + service.deploy")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
