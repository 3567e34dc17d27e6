"""Benchmark: what a run costs on the client and in round trips, as a person runs it.

On the built-in lab (its own slot: set TINSNIP_LAB_SLOT), natively and through a TCP forwarder
adding 25 ms of round trip in front of every host's sshd (bench/delay_proxy.py; these kernels
have no netem), prints medians of --runs runs of the `tinsnip` command (whole processes: wall
time and the process's CPU time) side by side, and the targets as ratios. Asserts nothing. It
restarts the slot's lab several times and leaves it up with the extra hosts. The bytecode of
the checkout is compiled first, as `pip install` does (this machine sets
PYTHONDONTWRITEBYTECODE); one row shows a no-op machine.setup without it.

    TINSNIP_LAB_SLOT=4 .venv/bin/python bench/site.py [--runs 5] [--growth 1,5,10,20,50]

Scenarios: the floor (one `ssh HOST sh -s < script` running the same fact checks as a no-op
machine.setup) and the Fabric one-script equivalent (bench/fabric_one_script.py: one Fabric
connection running that script), no-op machine.setup and service.deploy (gazette prod,
hello), no-op site.up over 1, 2 and 3 machine hosts with 4 machine-environments each (12 in all
on 3 hosts), first-run site.up over the 3 hosts (a fresh lab each run; its commands on the
NAS), the CLI's start (`tinsnip --list`, with `python -X importtime`'s top entries), and the
growth curve: first-run and no-op site.up over 1, 5, 10, 20 and 50 extra lab hosts with one
machine-environment each (Docker steps included), with the client's CPU per host.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
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
#: hosts of each growth point: the sheet number of that run (UIDs never collide)
SHEET_OF_GROWTH = {1: 2, 5: 3, 10: 4, 20: 5, 50: 1}
FLOOR = "floor: ssh homelab1 sh -s < same checks"
FABRIC = "Fabric one-script equivalent"
SETUP = "no-op machine.setup"
NAS = lab.NAS_HOST


def inventory(machines: list[tuple[str, str, list, dict]], sheet="benchsheet", number=6) -> str:
    """An inventory of ``machines`` (name, lab host, environments, services) on one sheet; every
    host's address is given, so exports name the lab's addresses whatever the SSH config's
    HostName is (127.0.0.1 through the delay proxy)."""
    lines = [f"sheets:\n  {sheet}:\n    nas: {NAS}\n    volume: /volume1\n    number: {number}\n"
             f"    docker: {{registry_mirrors: ['http://{NAS}:5000'], "
             f"insecure_registries: ['{NAS}:5000']}}",
             f"nas:\n  {NAS}:\n    host: {NAS}\n    address: {lab.LAB_HOSTS[NAS]}", "machines:"]
    for name, host, envs, services in machines:
        lines.append(f"  {name}:\n    sheet: {sheet}\n    host: {host}\n"
                     f"    address: {lab.LAB_HOSTS[host]}\n"
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


def timed(argv, **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``argv``; return its wall time, the CPU time (user + system) of it and its children,
    and the finished process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p


class Bench:
    def __init__(self, runs: int, work: Path):
        self.runs, self.work = runs, work
        self.lab_dir = None  # None: direct; else the delayed SSH files

    def ssh_config(self) -> Path:
        return (self.lab_dir or lab.lab_dir()) / "ssh_config"

    def env(self, inventory_path: Path, recap: Path | None = None, extra: dict | None = None) -> dict:
        """The `tinsnip` command's settings reaching the lab (through the proxy when delayed)."""
        allowed = "127.0.0.1" if self.lab_dir else ",".join(sorted(lab.LAB_HOSTS.values()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINSNIP_LAB")}
        env.update({"PYTHONPATH": str(ROOT),  # this checkout's tinsnip, whatever is installed
                    "TINSNIP_INVENTORY": str(inventory_path),
                    "TINSNIP_SSH_CONFIG": str(self.ssh_config()),
                    "TINSNIP_ALLOWED_HOSTS": allowed, **(extra or {})})
        if recap:
            env["TINSNIP_RECAP_FILE"] = str(recap)
        return env

    def inv(self, inv_path: Path, *args, extra: dict | None = None) -> tuple[float, float, dict]:
        """One `tinsnip ARGS` run: wall time, CPU time, the JSON recap."""
        recap = self.work / "recap.json"
        recap.unlink(missing_ok=True)
        wall, cpu, p = timed([sys.executable, "-m", "tinsnip_tasks", *args], cwd=self.work,
                             env=self.env(inv_path, recap, extra))
        data = json.loads(recap.read_text()) if recap.exists() else {}
        if p.returncode != 0:
            print(f"  ! {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-300:]}")
        return wall, cpu, data

    def median(self, inv_path, *args, extra: dict | None = None) -> tuple[float, float, str]:
        walls, cpus, data = [], [], {}
        for _ in range(self.runs):
            wall, cpu, data = self.inv(inv_path, *args, extra=extra)
            walls.append(wall)
            cpus.append(cpu)
        return statistics.median(walls), statistics.median(cpus), commands_note(data)

    def process(self, argv, stdin: str = "") -> tuple[float, float, str]:
        """Wall and CPU time of one run of a process that must succeed."""
        wall, cpu, p = timed(argv, input=stdin, cwd=ROOT)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:4])} failed: {p.stderr.strip()[-300:]}")
        return wall, cpu, ""

    def floor(self, script: str) -> tuple[float, float, str]:
        return self.process(["ssh", "-F", str(self.ssh_config()), "homelab1", "sh", "-s"], script)

    def fabric(self, script_file: Path) -> tuple[float, float, str]:
        return self.process([sys.executable, str(ROOT / "bench" / "fabric_one_script.py"),
                             str(self.ssh_config()), "homelab1", str(script_file)])

    def once(self, inv_path, *args) -> tuple[float, float, str]:
        wall, cpu, data = self.inv(inv_path, *args)
        return wall, cpu, commands_note(data)

    def interleaved(self, cases: dict) -> dict:
        """Medians of ``cases`` (name: function giving wall, CPU, note), run in turn, one run of
        each per round: the ratios between them see the same load."""
        runs: dict[str, list] = {name: [] for name in cases}
        for _ in range(self.runs):
            for name, fn in cases.items():
                runs[name].append(fn())
        return {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                       rs[-1][2]) for name, rs in runs.items()}


def commands_note(data: dict) -> str:
    """Each host's commands, what changed, and the longest a host kept the run waiting (its
    connection and commands: the rest of the wall time is the client's own)."""
    hosts = data.get("hosts") or {}
    cmds = " ".join(f"{h}={r['commands']}" for h, r in hosts.items())
    changed = sum(r["changed"] for r in hosts.values())
    return (f"commands {cmds}" + (f" changed={changed}" if changed else "")
            + f"; slowest host {slowest_host(data):.2f} s")


def slowest_host(data: dict) -> float:
    return max((r["seconds"] for r in (data.get("hosts") or {}).values()), default=0.0)


def nas_commands(data: dict) -> int:
    return ((data.get("hosts") or {}).get(NAS) or {}).get("commands", 0)


def facts_of_machine_setup(inv_path: Path) -> str:
    """The fact script a no-op machine.setup of gazette prod sends (the floor runs the same)."""
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


def compile_bytecode() -> None:
    """Compile the checkout's modules, as installing the package does (a machine that sets
    PYTHONDONTWRITEBYTECODE would otherwise compile them again on every run)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "tinsnip_tasks"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)


def drop_bytecode() -> None:
    for folder in (ROOT / "tinsnip_tasks").rglob("__pycache__"):
        shutil.rmtree(folder)


def cli_start(runs: int) -> tuple[dict, list[str]]:
    """Medians of `tinsnip --list` (python3 -m tinsnip_tasks): wall and CPU; its top imports."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, _ = timed([sys.executable, "-m", "tinsnip_tasks", "--list"], cwd=ROOT,
                             check=True)
        walls.append(wall)
        cpus.append(cpu)
    out = {"tinsnip --list": (statistics.median(walls), statistics.median(cpus))}
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "tinsnip_tasks", "--list"],
                       cwd=ROOT, capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), m.group(4)))
    top = sorted(rows, reverse=True)[:8]
    return out, [f"{cum / 1000:7.1f} ms  {name}" for cum, name in top]


class Table:
    """Rows of figures by latency ("native", "+25 ms"), as printed."""

    def __init__(self):
        self.rows: dict[str, dict[str, str]] = {}
        self.values: dict[tuple[str, str], tuple[float, float]] = {}

    def row(self, name, latency, wall, cpu, note=""):
        self.values[(name, latency)] = (wall, cpu)
        self.rows.setdefault(name, {})[latency] = (f"{wall:6.2f} s cpu {cpu:5.2f} s"
                                                   + (f"  ({note})" if note else ""))

    def ratio(self, a, b, latency="native", cpu=False):
        return self.values[(a, latency)][cpu] / self.values[(b, latency)][cpu]


def first_runs(bench: Bench, table: Table, runs: int, site_inv: Path) -> list[int]:
    """First-run site.up over 3 hosts, a fresh lab each run; returns the NAS's commands."""
    walls, cpus, nas = [], [], []
    for k in range(runs):
        if k:
            restart_lab(extra=1)
        wall, cpu, data = bench.inv(site_inv, "site.up")
        walls.append(wall)
        cpus.append(cpu)
        nas.append(nas_commands(data))
    table.row("first-run site.up, 3 hosts, 13 machine-envs", "native", statistics.median(walls),
              statistics.median(cpus), commands_note(data))
    return nas


def no_ops(bench: Bench, table: Table, site_inv: Path, work: Path):
    """The floor, the Fabric equivalent and the no-op runs, natively and at +25 ms."""
    limits = {1: "homelab1,&b*", 2: "homelab1,homelab2,&b*", 3: "b*"}
    script = facts_of_machine_setup(site_inv)
    script_file = work / "facts.sh"
    script_file.write_text(script)
    proxy = DelayProxy({h: (ip, 22) for h, ip in lab.LAB_HOSTS.items()}, 25)
    delayed = write_ssh_files(lab.lab_dir(), work / "delayed", proxy.ports)
    setup = ("machine.setup", "--machine", "gazette", "--env", "prod")
    cases = {FLOOR: lambda: bench.floor(script), FABRIC: lambda: bench.fabric(script_file),
             SETUP: lambda: bench.once(site_inv, *setup),
             "no-op service.deploy": lambda: bench.once(site_inv, "service.deploy", *setup[1:],
                                                        "--service", "hello")}
    for n, limit in limits.items():
        cases[f"no-op site.up, {n} host(s), {4 * n} machine-envs"] = \
            lambda limit=limit: bench.once(site_inv, "site.up", "--limit", limit)
    for latency, lab_dir in (("native", None), ("+25 ms", delayed)):
        bench.lab_dir = lab_dir
        for name, figures in bench.interleaved(cases).items():
            table.row(name, latency, *figures)
    bench.lab_dir = None
    proxy.close()
    drop_bytecode()  # tinsnip's own modules compiled on every run, as this machine would
    table.row(f"{SETUP}, tinsnip's bytecode not cached", "native", *bench.median(
        site_inv, "machine.setup", "--machine", "gazette", "--env", "prod",
        extra={"PYTHONDONTWRITEBYTECODE": "1"}))
    compile_bytecode()


def growth_curve(bench: Bench, work: Path, points: list[int]) -> dict:
    """First-run and no-op site.up over ``points`` extra lab hosts, one machine-env each."""
    out = {}
    restart_lab(extra=max(points))
    for n in points:
        path = work / f"grow{n}.yaml"
        path.write_text(inventory([(f"g{n}x{i:02d}", f"extra{i:02d}", ["prod"], {})
                                   for i in range(1, n + 1)], sheet=f"grow{n}",
                                  number=SHEET_OF_GROWTH[n]))
        first, first_cpu, data = bench.inv(path, "site.up")
        noop, noop_cpu, note = bench.median(path, "site.up")
        out[n] = (first, first_cpu, nas_commands(data), noop, noop_cpu,
                  float(note.rsplit(" ", 2)[-2]))
    return out


def verdict(value, target):
    return f"{value:.2f}x (target <= {target}x: {'met' if value <= target else 'NOT met'})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    ap.add_argument("--growth", default=",".join(map(str, SHEET_OF_GROWTH)),
                    help="hosts of each point of the growth curve, comma-separated, from "
                         f"{sorted(SHEET_OF_GROWTH)}; empty: no growth curve")
    ap.add_argument("--growth-only", action="store_true", help="only the growth curve")
    ap.add_argument("--first-runs", type=int, default=None,
                    help="runs of the first-run figure (default: --runs)")
    args = ap.parse_args()
    points = [int(n) for n in args.growth.split(",") if n.strip()]
    if any(n not in SHEET_OF_GROWTH for n in points):
        ap.error(f"--growth: points are among {sorted(SHEET_OF_GROWTH)}")
    work = Path(tempfile.mkdtemp(prefix="tinsnip-bench-"))
    bench, table = Bench(args.runs, work), Table()
    compile_bytecode()
    first_nas, top, growth = [], [], {}
    if not args.growth_only:
        restart_lab(extra=1)  # the lab's addresses are known from here on
        site_inv = work / "site.yaml"
        site_inv.write_text(inventory(site_machines()))
        first_nas = first_runs(bench, table, args.first_runs or args.runs, site_inv)
        no_ops(bench, table, site_inv, work)
        cli, top = cli_start(args.runs)
        for name, (wall, cpu) in cli.items():
            table.row(f"CLI start: {name}", "native", wall, cpu)
    if points:
        growth = growth_curve(bench, work, points)

    print(f"\ntinsnip benchmark: medians of {args.runs} runs of the `tinsnip` command, whole "
          f"processes, wall and CPU time (lab slot {lab.settings.SLOT}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f})\n")
    if table.rows:
        print(f"{'':48} {'native':<48} {'+25 ms round trip':<48}")
        for name, by in table.rows.items():
            print(f"{name:48} {by.get('native', ''):<48} {by.get('+25 ms', ''):<48}")
        print("\nCLI start, python -X importtime -m tinsnip_tasks --list, top entries "
              "(cumulative):")
        print("\n".join("  " + t for t in top))
    if growth:
        print("\ngrowth curve (1 machine-environment per extra lab host, Docker steps included; "
              "client CPU per host):")
        print(f"  {'hosts':>5} {'first-run site.up':>28} {'NAS cmds':>9} {'no-op site.up':>28}"
              f" {'slowest host':>13}")
        for n, (first, first_cpu, nas, noop, noop_cpu, slowest) in growth.items():
            print(f"  {n:>5} {first:>8.2f} s cpu {first_cpu:5.2f} s "
                  f"({first_cpu / n * 1000:4.0f} ms/host) {nas:>6}   {noop:>6.2f} s cpu "
                  f"{noop_cpu:5.2f} s ({noop_cpu / n * 1000:4.0f} ms/host) {slowest:>8.2f} s")

    print("\ntargets:")
    if table.rows:
        for latency in ("native", "+25 ms"):
            print(f"  no-op machine.setup / floor, wall ({latency}): "
                  f"{verdict(table.ratio(SETUP, FLOOR, latency), 1.5)}")
        print(f"  no-op machine.setup / Fabric one-script, client CPU: "
              f"{verdict(table.ratio(SETUP, FABRIC, cpu=True), 2)}")
        for latency in ("native", "+25 ms"):
            print(f"  no-op site.up 3 hosts / 1 host ({latency}): " + verdict(table.ratio(
                "no-op site.up, 3 host(s), 12 machine-envs",
                "no-op site.up, 1 host(s), 4 machine-envs", latency), 1.3))
    if 1 in growth and 20 in growth:
        print(f"  no-op site.up 20 hosts / 1 host (native): "
              f"{verdict(growth[20][3] / growth[1][3], 3)}")
    if 1 in growth and 50 in growth:
        print(f"  no-op site.up 50 hosts / 1 host (native): {growth[50][3] / growth[1][3]:.2f}x")
    if first_nas:
        nas = statistics.median(first_nas)
        print(f"  commands on the NAS, first run on 13 machine-environments: {nas:g} "
              f"(target <= 4: {'met' if nas <= 4 else 'NOT met'})")
    if top:
        print(f"  tinsnip --list: {table.values[('CLI start: tinsnip --list', 'native')][0]:.2f} s "
              "(target < 0.3 s)")


if __name__ == "__main__":
    main()
