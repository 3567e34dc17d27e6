"""Helpers for the end-to-end tests: run tinsnip's real CLI against the lab."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinsnip_lab.testing import lab  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[2]
E2E_INVENTORY = Path(__file__).resolve().parent / "data" / "inventory.yaml"
SUMMARY = re.compile(r"^(?P<host>\S+): ok=(?P<ok>\d+) changed=(?P<changed>\d+) "
                     r"failed=(?P<failed>\d+) commands=(?P<commands>\d+) seconds=(?P<seconds>[\d.]+)",
                     re.M)


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
        p = subprocess.run(argv, cwd=cwd, env=self.env(extra_env), capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=600)
        p.summaries = {m["host"]: {k: (float(v) if k == "seconds" else int(v))
                                   for k, v in m.groupdict().items() if k != "host"}
                       for m in SUMMARY.finditer(p.stdout)}
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
