"""SSH connections: host keys checked against known_hosts, fast round trips, lab or real hosts.

With ``TINSNIP_LAB=1`` every connection goes through the lab's ``.lab/ssh_config`` and
``.lab/known_hosts`` and only to lab hosts; without it the lab is never used and the user's own
SSH configuration and ``~/.ssh/known_hosts`` apply. Either way an unknown host key is refused.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote

from .core.target import address_of, split_target as _split_target  # noqa: F401
from .errors import InputError, UnreachableError


# paramiko reports connection failures through logging as well as by raising; the raised error
# is what we show, so its log records are not printed twice.
_paramiko_log = logging.getLogger("paramiko")
_paramiko_log.addHandler(logging.NullHandler())
_paramiko_log.propagate = False


class QuickRemote(Remote):
    """Fabric's remote runner with a shorter pause in its stdin loop (default 10 ms a turn)."""

    input_sleep = 0.001


def lab_mode() -> bool:
    return os.environ.get("TINSNIP_LAB", "") not in ("", "0")


def make_config(lab: bool) -> Config:
    overrides = {"runners": {"remote": QuickRemote}, "timeouts": {"connect": 10}}
    if lab:
        import tinsnip_lab as lab

        return Config(overrides=overrides, runtime_ssh_path=str(lab.ssh_config_path()))
    return Config(overrides=overrides)


def known_hosts_files(conn: Connection, lab: bool) -> list[Path]:
    if lab:
        import tinsnip_lab as lab

        return [lab.known_hosts_path()]
    listed = conn.ssh_config.get("userknownhostsfile", "")
    files = [Path(os.path.expanduser(p)) for p in listed.split()] if listed else []
    return files or [Path.home() / ".ssh" / "known_hosts"]


def connect(target: str, *, lab: bool | None = None) -> Connection:
    """Open an SSH connection to ``target`` with strict host key checking and TCP_NODELAY.

    ``lab`` defaults to :func:`lab_mode` (the ``TINSNIP_LAB`` environment variable).

    :raises InputError: lab mode is on and ``target`` is not a lab host.
    :raises UnreachableError: the host cannot be reached or its key is unknown or wrong.
    """
    user, host, port = _split_target(target)
    lab = lab_mode() if lab is None else lab
    if lab:
        import tinsnip_lab as lab

        if host not in lab.LAB_HOSTS:
            raise InputError(f"TINSNIP_LAB is set, so only lab hosts are reached "
                             f"({', '.join(lab.LAB_HOSTS)}); {host!r} is not one")
        if not lab.ssh_config_path().exists():
            raise UnreachableError(host, "the lab is not up; run `inv lab.up` first")
    conn = Connection(host, user=user, port=port, config=make_config(lab))
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    for f in known_hosts_files(conn, lab):
        if f.exists():
            conn.client.load_host_keys(str(f))
    try:
        conn.open()
    except paramiko.BadHostKeyException as e:
        raise UnreachableError(host, f"its host key does not match known_hosts ({e}); if the "
                                     "host was rebuilt, check the new key and replace the entry") from e
    except paramiko.SSHException as e:
        hint = (" (check its key, then add it to known_hosts)" if "known_hosts" in str(e) else "")
        raise UnreachableError(host, f"{e}{hint}") from e
    except (OSError, socket.timeout) as e:
        raise UnreachableError(host, str(e) or type(e).__name__) from e
    sock = conn.transport.sock
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Connections:
    """Connections reused across the steps of one run, opened on first use, closed at the end."""

    def __init__(self):
        self._open: dict[str, Connection] = {}

    def get(self, target: str) -> Connection:
        if target not in self._open:
            self._open[target] = connect(target)
        return self._open[target]

    def close(self):
        for c in self._open.values():
            c.close()
        self._open.clear()
