"""Shared test settings: tests that need the lab are marked `lab` and skipped without root."""

import os
import shutil
from pathlib import Path

import pytest

_LAB_TESTS = Path(__file__).resolve().parent / "lab"


def _lab_unavailable():
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [tool for tool in ("ip", "unshare", "ssh", "ssh-keygen", "debootstrap", "zstd")
               if shutil.which(tool) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}: run .ci/lab-deps.sh"
    return None


def _needs_lab(item):
    in_lab_dir = _LAB_TESTS in Path(str(item.fspath)).resolve().parents
    return in_lab_dir or "lab" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    reason, checked = None, False
    for item in items:
        if not _needs_lab(item):
            continue
        item.add_marker(pytest.mark.lab)
        if not checked:
            reason, checked = _lab_unavailable(), True
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
