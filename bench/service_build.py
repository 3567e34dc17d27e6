"""Benchmark: a service from its own folder (examples/pyhello) on the built-in lab: the local
context digest and tarball, the first deploy (upload + build), a no-op re-deploy, and a deploy
after one file changed (upload + rebuild + restart). Prints figures; asserts nothing.

    TINSNIP_LAB_SLOT=N python3 bench/service_build.py     # brings the lab up if needed
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinsnip_lab as lab  # noqa: E402
from tinsnip_lab import pybase  # noqa: E402
from tinsnip_tasks.connect import connect  # noqa: E402
from tinsnip_tasks.core import context  # noqa: E402

EXAMPLE = ROOT / "examples" / "pyhello"
WP = ("--machine", "benchapps", "--env", "prod")
USER, UID, HOST = "benchapps-prod", 14100, "homelab2"


def timed(label, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{label:<48} {time.perf_counter() - t:7.2f} s")
    return out


def main():
    lab.up(log=lambda *_: None)
    if not (EXAMPLE / "vendor" / "uv").is_file():
        subprocess.run([str(EXAMPLE / "vendor.sh")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = root / "pyhello"
        shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__"))
        with open(app / "service.env", "a") as f:
            f.write(f"PYHELLO_BASE_IMAGE={pybase.IMAGE}\n")
        files = timed("context: list files (.dockerignore)", lambda: context.context_files(app))
        timed("context: digest", lambda: context.digest(app, files))
        data = timed("context: gzip tarball", lambda: context.tarball(app, files))
        print(f"{'context size':<48} {len(data) / 1e6:7.1f} MB ({len(files)} files)")
        inv = {"sheets": {"dynamicalsystem": {"nas": "ds412plus"}},
               "nas": {"ds412plus": {"host": "ds412plus"}},
               "machines": {"benchapps": {"sheet": "dynamicalsystem", "host": HOST, "number": 41,
                                          "environments": ["prod"],
                                          "services": {"pyhello": {"path": "pyhello",
                                                                   "ports": {"web": 2}}}}}}
        (root / "inventory.yaml").write_text(yaml.safe_dump(inv))
        env = {**os.environ, "TINSNIP_LAB": "1", "TINSNIP_INVENTORY": str(root / "inventory.yaml")}

        def inv_(*args):
            p = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True)
            return [l for l in p.stdout.splitlines() if "commands=" in l]

        inv_("nas.setup", *WP)
        inv_("machine.setup", *WP)
        conn = connect(HOST, lab=True)
        conn.put(str(pybase.tarball()), "/tmp/pybase.tar.gz")
        conn.run(f"chmod 644 /tmp/pybase.tar.gz && sudo -u {USER} env "
                 f"DOCKER_HOST=unix:///run/user/{UID}/docker.sock docker import "
                 f"/tmp/pybase.tar.gz {pybase.IMAGE} && rm -f /tmp/pybase.tar.gz", hide=True)
        driver = conn.run(f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock "
                          "docker info --format '{{.Driver}}'", hide=True).stdout.strip()
        print(f"{'storage driver of the rootless daemon':<48} {driver}")
        for label in ("service.deploy, first (upload + build)", "service.deploy, no change"):
            print(*timed(label, lambda: inv_("service.deploy", *WP, "--service", "pyhello")))
        source = app / "pyhello" / "app.py"
        source.write_text(source.read_text() + "\n# changed\n")
        print(*timed("service.deploy, one file changed (rebuild)",
                     lambda: inv_("service.deploy", *WP, "--service", "pyhello")))
        inv_("machine.teardown", *WP)
        inv_("nas.remove", *WP, "--purge")
        conn.close()


if __name__ == "__main__":
    main()
