"""Helpers for the end-to-end tests: run tinsnip's real CLI against the lab."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from http import client as http_client
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
E2E_INVENTORY = Path(__file__).resolve().parent / "data" / "inventory.yaml"
#: Invoke reads ``tinsnip.recap_file`` from these (its config's env prefix for inv and fab).
RECAP_VARS = ("INVOKE_TINSNIP_RECAP_FILE", "FABRIC_TINSNIP_RECAP_FILE", "TINSNIP_RECAP_FILE")


class Cli:
    """``inv``/``fab``/``make`` as a person runs them, with TINSNIP_LAB=1."""

    def __init__(self, inventory=None):
        self.inventory = inventory

    def env(self, extra=None):
        env = {**os.environ, "TINSNIP_LAB": "1"}
        if self.inventory:
            env["TINSNIP_INVENTORY"] = str(self.inventory)
        env.update(extra or {})
        return env

    def run(self, argv, *, check=True, extra_env=None, cwd=ROOT):
        """Run ``argv``; ``p.recap`` is the run's JSON recap (None if it wrote none) and
        ``p.summaries`` its per-host counts."""
        with tempfile.TemporaryDirectory() as tmp:
            recap = Path(tmp) / "recap.json"
            env = self.env({**{v: str(recap) for v in RECAP_VARS}, **(extra_env or {})})
            p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, timeout=600)
            p.recap = json.loads(recap.read_text()) if recap.exists() else None
        p.summaries = {h: {k: r[k] for k in ("ok", "changed", "failed", "commands", "seconds",
                                              "reachable")}
                       for h, r in ((p.recap or {}).get("hosts") or {}).items()}
        if check and p.returncode != 0:
            raise AssertionError(f"{argv} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def inv(self, *args, **kw):
        return self.run([sys.executable, "-m", "invoke", *args], **kw)

    def fab(self, *args, **kw):
        return self.run([sys.executable, "-m", "fabric", *args], **kw)


@pytest.fixture(scope="session")
def cli():
    return Cli()


@pytest.fixture(scope="session")
def e2e_cli():
    return Cli(E2E_INVENTORY)


def http(lab, host, port, path="/", wait=60):  # noqa: F811 (the lab fixture, passed in)
    """The page, once the service answers (a container that just started may not listen yet)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return urllib.request.urlopen(f"http://{lab.ip(host)}:{port}{path}",
                                          timeout=20).read().decode()
        except (OSError, http_client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def steps(p, host):
    """{step: (state, detail)} from a task's report lines for ``host``."""
    out = {}
    for line in p.stdout.splitlines():
        fields = line.split(None, 3)
        if len(fields) >= 3 and fields[0] == host:
            out[fields[1]] = (fields[2], fields[3] if len(fields) > 3 else "")
    return out
