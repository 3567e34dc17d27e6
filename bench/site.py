"""Benchmark: one SSH round trip per host when nothing changes, and site.up across hosts.

On the built-in lab (its own slot: set TINSNIP_LAB_SLOT), natively and through a TCP forwarder
adding 25 ms of round trip in front of every host's sshd (bench/delay_proxy.py; these kernels
have no netem), prints medians of --runs runs (whole processes, as a person runs them) side by
side, and the issue's target ratios. Asserts nothing. It restarts the slot's lab several times
and leaves it up with the extra hosts.

    TINSNIP_LAB_SLOT=4 python3 bench/site.py [--runs 5] [--no-growth]

Scenarios: the floor (one `ssh HOST sh -s < script` running the same fact checks as a no-op
machine.setup), no-op machine.setup and service.deploy (gazette prod, hello), no-op site.up over
1, 2 and 3 machine hosts with 4 machine-environments each (12 in all on 3 hosts), first-run
site.up over the 3 hosts (a fresh lab each run), the CLI's start (`inv --list`, with
`python -X importtime`'s top entries), and the growth curve: first-run and no-op site.up over
1, 5, 10 and 20 extra lab hosts with one machine-environment each (Docker steps included).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import tinsnip_lab as lab  # noqa: E402
from delay_proxy import DelayProxy, write_ssh_files  # noqa: E402

BASE_HOSTS = ("homelab1", "homelab2", "extra01")
GROWTH = {1: 2, 5: 3, 10: 4, 20: 5}  # hosts: the sheet number of that run (UIDs never collide)


def inventory(machines: list[tuple[str, str, list, dict]], sheet="benchsheet", number=6) -> str:
    lines = [f"sheets:\n  {sheet}:\n    nas: ds412plus\n    volume: /volume1\n    number: {number}",
             "nas:\n  ds412plus:\n    host: ds412plus", "machines:"]
    for name, host, envs, services in machines:
        lines.append(f"  {name}:\n    sheet: {sheet}\n    host: {host}\n"
                     f"    environments: [{', '.join(envs)}]")
        if services:
            lines.append("    services:\n" + "".join(f"      {s}: {{http: {i}}}\n"
                                                     for s, i in services.items()).rstrip())
    return "\n".join(lines) + "\n"


def site_machines():
    """gazette prod with hello (the single-task figures), and 4 machine-environments on each
    of the three machine hosts (two machines, prod and test; hello in prod)."""
    out = [("gazette", "homelab1", ["prod"], {"hello": 0})]
    for k, host in enumerate(BASE_HOSTS):
        for j in (1, 2):
            out.append((f"b{k + 1}m{j}", host, ["prod", "test"], {"hello": 1} if j == 1 else {}))
    return out


class Bench:
    def __init__(self, runs: int, work: Path):
        self.runs, self.work = runs, work
        self.lab_dir = None  # None: direct; else the delayed SSH files

    def env(self, inventory_path: Path, recap: Path | None = None) -> dict:
        env = {**os.environ, "TINSNIP_LAB": "1", "TINSNIP_INVENTORY": str(inventory_path)}
        if self.lab_dir:  # through the delay proxy on this machine
            env["TINSNIP_LAB_DIR"] = str(self.lab_dir)
            env["TINSNIP_ALLOWED_HOSTS"] = "127.0.0.1"
        if recap:
            env["INVOKE_TINSNIP_RECAP_FILE"] = str(recap)
        return env

    def inv(self, inv_path: Path, *args) -> tuple[float, dict]:
        recap = self.work / "recap.json"
        recap.unlink(missing_ok=True)
        started = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT,
                           env=self.env(inv_path, recap), capture_output=True, text=True)
        took = time.perf_counter() - started
        data = json.loads(recap.read_text()) if recap.exists() else {}
        if p.returncode != 0:
            print(f"  ! {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-300:]}")
        return took, data

    def median(self, inv_path, *args) -> tuple[float, str]:
        times, data = [], {}
        for _ in range(self.runs):
            t, data = self.inv(inv_path, *args)
            times.append(t)
        cmds = " ".join(f"{h}={r['commands']}" for h, r in (data.get("hosts") or {}).items())
        changed = sum(r["changed"] for r in (data.get("hosts") or {}).values())
        return statistics.median(times), f"commands {cmds}" + (f" changed={changed}" if changed else "")

    def floor(self, script: str) -> float:
        cfg = (self.lab_dir or lab.lab_dir()) / "ssh_config"
        times = []
        for _ in range(self.runs):
            started = time.perf_counter()
            subprocess.run(["ssh", "-F", str(cfg), "homelab1", "sh", "-s"], input=script,
                           capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def facts_of_machine_setup(inv_path: Path) -> str:
    """The fact script a no-op machine.setup of gazette prod sends (the floor runs the same)."""
    os.environ["TINSNIP_INVENTORY"] = str(inv_path)
    from tinsnip_tasks.core.inventory import load_inventory
    from tinsnip_tasks.core.render import catalog
    from tinsnip_tasks.ops.base import facts_script, remote_script
    from tinsnip_tasks.plans import Target, build
    from tinsnip_tasks.plans import machine as machine_plan

    inv = load_inventory(inv_path, catalog=catalog())
    t = Target(inv, inv.smep("gazette", "prod"))
    return remote_script(facts_script([r for fn in machine_plan.SETUP
                                       for r in build(fn, t).resources]))


def restart_lab(extra: int):
    lab.down(log=lambda *_: None)
    lab.up(extra_hosts=extra, log=lambda *_: None)


def cli_start(runs: int) -> tuple[dict, list[str]]:
    """Medians of `tinsnip --list` (python3 -m tinsnip_tasks) and `inv --list` in the
    checkout, and the top imports of the first."""
    out = {}
    for name, argv in (("tinsnip --list", ["-m", "tinsnip_tasks", "--list"]),
                       ("inv --list", ["-m", "invoke", "--list"])):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times)
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "tinsnip_tasks", "--list"],
                       cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), m.group(4)))
    top = sorted(rows, reverse=True)[:8]
    return out, [f"{cum / 1000:7.1f} ms  {name}" for cum, name in top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    ap.add_argument("--no-growth", action="store_true", help="leave out the growth curve")
    ap.add_argument("--first-runs", type=int, default=None,
                    help="runs of the first-run figure (default: --runs)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tinsnip-bench-"))
    bench = Bench(args.runs, work)
    site_inv = work / "site.yaml"
    site_inv.write_text(inventory(site_machines()))
    rows: dict[str, dict[str, str]] = {}

    def row(name, latency, seconds, note=""):
        rows.setdefault(name, {})[latency] = f"{seconds:6.2f} s" + (f"  ({note})" if note else "")

    limits = {1: "homelab1,&b*", 2: "homelab1,homelab2,&b*", 3: "b*"}

    # first-run site.up over 3 hosts: a fresh lab each run
    firsts = []
    for _ in range(args.first_runs or args.runs):
        restart_lab(extra=1)
        t, data = bench.inv(site_inv, "site.up")
        firsts.append(t)
    first_note = " ".join(f"{h}={r['commands']}" for h, r in data["hosts"].items())
    row("first-run site.up, 3 hosts, 13 machine-envs", "native", statistics.median(firsts),
        "commands " + first_note)

    script = facts_of_machine_setup(site_inv)
    proxy = DelayProxy({h: (ip, 22) for h, ip in lab.LAB_HOSTS.items()}, 25)
    delayed = write_ssh_files(lab.lab_dir(), work / "delayed", proxy.ports)
    for latency, lab_dir in (("native", None), ("+25 ms", delayed)):
        bench.lab_dir = lab_dir
        row("floor: ssh homelab1 sh -s < same checks", latency, bench.floor(script))
        t, note = bench.median(site_inv, "machine.setup", "--machine", "gazette", "--env", "prod")
        row("no-op machine.setup", latency, t, note)
        t, note = bench.median(site_inv, "service.deploy", "--machine", "gazette", "--env", "prod",
                               "--service", "hello")
        row("no-op service.deploy", latency, t, note)
        for n, limit in limits.items():
            t, note = bench.median(site_inv, "site.up", "--limit", limit)
            row(f"no-op site.up, {n} host(s), {4 * n} machine-envs", latency, t, note)
    bench.lab_dir = None
    cli, top = cli_start(args.runs)
    for name, seconds in cli.items():
        row(f"CLI start: {name}", "native", seconds)

    growth = {}
    if not args.no_growth:
        restart_lab(extra=max(GROWTH))
        for n, sheet_no in GROWTH.items():
            path = work / f"grow{n}.yaml"
            path.write_text(inventory([(f"g{n}x{i:02d}", f"extra{i:02d}", ["prod"], {})
                                       for i in range(1, n + 1)], sheet=f"grow{n}", number=sheet_no))
            first, _ = bench.inv(path, "site.up")
            noop, note = bench.median(path, "site.up")
            growth[n] = (first, noop, note)

    print(f"\ntinsnip benchmark: medians of {args.runs} runs, whole processes "
          f"(lab slot {lab.settings.SLOT}, {os.cpu_count()} cores)\n")
    print(f"{'':48} {'native':<40} {'+25 ms round trip':<40}")
    for name, by in rows.items():
        print(f"{name:48} {by.get('native', ''):<40} {by.get('+25 ms', ''):<40}")
    print("\nCLI start, python -X importtime -m tinsnip_tasks --list, top entries (cumulative):")
    print("\n".join("  " + t for t in top))
    if growth:
        print("\ngrowth curve (1 machine-environment per extra lab host, Docker steps included):")
        print(f"  {'hosts':>5} {'first-run site.up':>18} {'no-op site.up':>14}")
        for n, (first, noop, note) in growth.items():
            print(f"  {n:>5} {first:>16.2f} s {noop:>12.2f} s   {note.split()[0]} "
                  f"{len(note.split()) - 1} hosts")

    def value(name, latency):
        return float(rows[name][latency].split()[0])

    print("\ntargets:")
    for latency in ("native", "+25 ms"):
        r = value("no-op machine.setup", latency) / value("floor: ssh homelab1 sh -s < same checks",
                                                         latency)
        print(f"  no-op machine.setup / floor ({latency}): {r:.2f}x (target <= 1.5x)")
        r = value("no-op site.up, 3 host(s), 12 machine-envs", latency) / \
            value("no-op site.up, 1 host(s), 4 machine-envs", latency)
        print(f"  no-op site.up 3 hosts / 1 host ({latency}): {r:.2f}x (target <= 1.3x)")
    if growth:
        print(f"  no-op site.up 20 hosts / 1 host (native): {growth[20][1] / growth[1][1]:.2f}x "
              "(target <= 3x)")
    print(f"  tinsnip --list: {cli['tinsnip --list']:.2f} s (target < 0.3 s)")
    proxy.close()


if __name__ == "__main__":
    main()
