"""How fast the `tinsnip` command starts: `tinsnip --list`, whole process, median of 15 runs, plus
the slowest imports (`python -X importtime`). Target: under 0.3 s. Prints figures; asserts nothing.

    .venv/bin/python bench/cli_start.py
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15


def wall(argv, cwd, env):
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(ROOT / "inventory.yaml", folder)
        candidates = [("python -c pass (interpreter alone)", [sys.executable, "-c", "pass"]),
                      ("python -m tinsnip_tasks --list", [sys.executable, "-m", "tinsnip_tasks",
                                                          "--list"])]
        script = Path(sys.executable).with_name("tinsnip")
        if script.exists():
            candidates.append(("tinsnip --list (console script)", [str(script), "--list"]))
        for label, argv in candidates:
            print(f"{label:<40} median {wall(argv, folder, env) * 1000:6.0f} ms  (target < 300)")
        p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                            "import tinsnip_tasks.main"], cwd=folder, env=env,
                           capture_output=True, text=True, check=True)
    rows = []
    for line in p.stderr.splitlines()[1:]:
        _, self_us, total_us, name = (part.strip() for part in line.split("|", 1)[0].split(":", 1)
                                      + line.split("|")[1:])
        rows.append((int(total_us), name))
    print("\nslowest imports (cumulative ms):")
    for total, name in sorted(rows, reverse=True)[:12]:
        print(f"  {total / 1000:6.1f}  {name.strip()}")
    loaded = {name.strip() for _, name in rows}
    print("\nfabric imported:", "fabric" in loaded, " paramiko imported:", "paramiko" in loaded)


if __name__ == "__main__":
    main()
