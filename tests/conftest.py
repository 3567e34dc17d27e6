"""Shared test settings: tests under tests/lab/ are marked `lab` and need root."""

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


def pytest_collection_modifyitems(config, items):
    reason = None
    checked = False
    for item in items:
        if _LAB_TESTS not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.lab)
        if not checked:
            reason, checked = _lab_unavailable(), True
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _no_lab_routing_by_accident(monkeypatch, request):
    """Only lab tests may route tasks to the lab; others start without TINSNIP_LAB."""
    if "lab" not in request.keywords:
        monkeypatch.delenv("TINSNIP_LAB", raising=False)
