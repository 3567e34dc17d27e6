"""Shared test settings: tests that need the lab are marked `lab` and skipped without root;
tests of the kernel hosts (tests/kernel) are marked `kernel` too, skipped without QEMU, and
make the session boot those hosts in the background as soon as the lab is up."""

import os
import shutil
import signal
from pathlib import Path

import pytest

from tinsnip_lab.testing import FIGURES, KERNEL_WANTED
# One lab for the end-to-end and kernel tiers, so the kernel hosts boot while the end-to-end
# tests run; tests/lab/conftest.py gives the lab tier a fresh one of its own.
from tinsnip_lab.testing import kernel_lab, lab  # noqa: F401  (session fixtures)

# A session started in the background by a script (`make test &`) inherits SIGINT ignored, and
# so would every program it starts; the tests that press Ctrl-C need it as a terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_HERE = Path(__file__).resolve().parent
_LAB_TESTS = _HERE / "lab"
_KERNEL_TESTS = _HERE / "kernel"


def _lab_unavailable():
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [tool for tool in ("ip", "unshare", "ssh", "ssh-keygen", "debootstrap", "zstd")
               if shutil.which(tool) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}: run .ci/lab-deps.sh"
    return None


def _kernel_unavailable():
    missing = [tool for tool in ("qemu-system-x86_64", "qemu-img", "mkfs.ext4")
               if shutil.which(tool) is None]
    if missing:
        return f"the kernel hosts need {', '.join(missing)}: run .ci/lab-deps.sh"
    return None


def _in(item, folder):
    return folder in Path(str(item.fspath)).resolve().parents


def _needs_lab(item):
    return _in(item, _LAB_TESTS) or _in(item, _KERNEL_TESTS) or "lab" in getattr(
        item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config, items):
    reason, checked = None, False
    for item in items:
        if _in(item, _KERNEL_TESTS):
            item.add_marker(pytest.mark.kernel)
            kreason = _kernel_unavailable()
            if kreason:
                item.add_marker(pytest.mark.skip(reason=kreason))
        if not _needs_lab(item):
            continue
        item.add_marker(pytest.mark.lab)
        if not checked:
            reason, checked = _lab_unavailable(), True
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_collection_finish(session):
    session.config.stash[KERNEL_WANTED] = any(
        item.get_closest_marker("kernel") and not item.get_closest_marker("skip")
        for item in session.items)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("kernel hosts")
        for line in FIGURES:
            terminalreporter.write_line(line)
