"""Shared test settings: tests that need the lab are marked `lab` and skipped without root;
tests of the kernel hosts (tests/kernel) are marked `kernel` too, skipped without QEMU, and
make the session boot those hosts in the background as soon as the lab is up."""

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

# `make test` runs two workers (pytest-xdist, `-n 2`): the kernel tier in one, every other test
# in the other (see pytest_xdist_make_scheduler), each with a lab of its own (a slot and a folder
# of its own), so the kernel hosts' slow work runs beside the end-to-end tests. Set before the
# lab is imported.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER not in ("", "gw0"):
    _n = int(_WORKER[2:])
    os.environ["TINSNIP_LAB_SLOT"] = str((int(os.environ.get("TINSNIP_LAB_SLOT") or 0) + _n) % 10)
    os.environ["TINSNIP_LAB_DIR"] = (os.environ.get("TINSNIP_LAB_DIR")
                                     or str(Path(__file__).resolve().parents[1] / ".lab")
                                     ) + f"-{_WORKER}"

from tinsnip_lab.testing import FIGURES, KERNEL_WANTED  # noqa: E402
# In one process, one lab for the end-to-end and kernel tiers, so the kernel hosts boot while
# the end-to-end tests run; tests/lab/conftest.py gives the lab tier a fresh one of its own.
from tinsnip_lab.testing import kernel_lab, lab  # noqa: F401,E402  (session fixtures)

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
    # a worker collects every test but runs its group only: its kernel tests start the boot
    session.config.stash[KERNEL_WANTED] = not _WORKER and any(
        item.get_closest_marker("kernel") and not item.get_closest_marker("skip")
        for item in session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Two tiers, each whole to one worker in collection order: the kernel tier, the rest."""
    from xdist.scheduler import LoadScopeScheduling

    class Tiers(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return "kernel" if nodeid.startswith("tests/kernel/") else "rest"

    return Tiers(config, log)


_TIER = {}


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") and "started" not in _TIER:
        _TIER["started"] = time.monotonic()


def pytest_sessionfinish(session):
    if "started" in _TIER:
        minutes, seconds = divmod(time.monotonic() - _TIER["started"], 60)
        FIGURES.append(f"kernel tier: {minutes:.0f} min {seconds:.0f} s from its first test's "
                       "setup to the session's end")
    if _WORKER and FIGURES:  # to the controller, which prints them
        session.config.workeroutput["figures"] = list(FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    FIGURES.extend(getattr(node, "workeroutput", {}).get("figures", ()))


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("kernel hosts")
        for line in FIGURES:
            terminalreporter.write_line(line)
