"""Pytest support for tests that run against the lab's real hosts over SSH.

Use it from a conftest.py with ``from tinsnip_lab.testing import lab  # noqa: F401``.
The session fixture `lab` starts a fresh lab once per session (a lab left up before, by the
demo say, is taken down first, so every session starts from the same state) and takes it down
at the end, unless ``TINSNIP_KEEP_LAB=1``.
Connections check host keys against ``.lab/known_hosts`` and refuse unknown ones.
`kernel_lab` adds the kernel hosts (QEMU), booted in the background from the session's start
when it has kernel tests.
"""

import os
import threading
import time

import pytest

import tinsnip_lab as lab_api
from tinsnip_tasks.connect import connect


class LabHosts:
    """Access to the lab hosts over real SSH, with host keys checked against known_hosts."""

    def __init__(self):
        self._connections = {}

    def ip(self, host):
        """Return ``host``'s address on the lab bridge."""
        return lab_api.LAB_HOSTS[host]

    def connection(self, host):
        """Return a cached, open `fabric.Connection` to ``host`` as root, made the way every
        tinsnip task makes one (lab SSH config, known hosts checked, TCP_NODELAY)."""
        if host not in lab_api.LAB_HOSTS:
            raise KeyError(f"unknown lab host {host!r}")
        conn = self._connections.get(host)
        if conn is None or not conn.is_connected:
            conn = connect(host, lab_api.ssh_profile())
            self._connections[host] = conn
        return conn

    def run(self, host, cmd, **kw):
        """Run ``cmd`` on ``host`` as root and return the invoke Result.

        Output is hidden unless ``hide`` is given; ``warn=True`` returns failures too.
        """
        kw.setdefault("hide", True)
        kw.setdefault("in_stream", False)
        return self.connection(host).run(cmd, **kw)

    def read(self, host, path):
        """Return the text of the file ``path`` on ``host``."""
        with self.connection(host).sftp().open(path) as f:
            return f.read().decode()

    def close(self):
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()


#: Set (in ``config.stash``) when the session has tests of the kernel hosts: the ``lab`` fixture
#: then starts their boot in the background as soon as the lab is up.
KERNEL_WANTED = pytest.StashKey[bool]()

#: Lines for the session's summary: boot, reboot and image build times of the kernel hosts.
FIGURES = []


class KernelBoot:
    """The kernel hosts' boot, started in a thread (building their image the first time) while
    other tests run; :meth:`wait` returns once both answer and have finished booting."""

    def __init__(self):
        self.result, self.error, self.times = None, None, None
        self.thread = threading.Thread(target=self._start, daemon=True)
        self.started = time.monotonic()
        self.thread.start()

    def _start(self):
        try:
            self.result = lab_api.start_kernel(log=FIGURES.append)
        except Exception as e:  # handed to the tests that need the hosts
            self.error = e

    def wait(self):
        if self.times is None:
            self.thread.join()
            if self.error is not None:
                raise self.error
            self.times = lab_api.wait_kernel(self.result, log=FIGURES.append)
        return self.times


_boot = {}


def kernel_boot():
    """The session's :class:`KernelBoot`, started on first call."""
    if "boot" not in _boot:
        _boot["boot"] = KernelBoot()
    return _boot["boot"]


def fresh_lab(request, *, kernel: bool = True):
    """A fresh lab for the session (a generator for a fixture); with ``kernel``, the kernel
    hosts' boot starts in the background as soon as it is up, when the session has their
    tests."""
    lab_api.down()
    _boot.clear()  # down stopped the kernel hosts: a boot started before is over
    lab_api.up()
    if kernel and request.config.stash.get(KERNEL_WANTED, False):
        kernel_boot()
    hosts = LabHosts()
    yield hosts
    hosts.close()
    if os.environ.get("TINSNIP_KEEP_LAB") != "1":
        lab_api.down()
    _boot.clear()


@pytest.fixture(scope="session")
def lab(request):
    """A fresh lab, up for the whole session; see the module docstring for when it goes down."""
    yield from fresh_lab(request)


@pytest.fixture(scope="session")
def kernel_lab(lab):
    """The lab with its kernel hosts ds920 and homelab4 booted (QEMU); their boot started
    when the lab came up, so it overlapped the tests that ran before."""
    kernel_boot().wait()
    return lab
