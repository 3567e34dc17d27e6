"""SSH connections: host keys checked against known_hosts on every hop, fast round trips.

:func:`connect` reaches a target the way an :class:`SshProfile` says: which OpenSSH client
config, which known_hosts files, which hosts may be reached at all, and (under ``fab``) the
Fabric configuration that carries ``-i``, ``-S`` and ``fabric.yaml``. An unknown or changed
host key is refused on the target and on every ProxyJump hop before it. Fabric and paramiko
are imported on first use, so listing tasks stays fast.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, UnreachableError


#: What paramiko says of a host that accepted the connection but did not speak SSH in time.
SILENT = ("No existing session", "Error reading SSH protocol banner")


@functools.cache
def _quiet_paramiko():
    # paramiko reports connection failures through logging as well as by raising; the raised
    # error is what we show, so its log records are not printed twice.
    log = logging.getLogger("paramiko")
    log.addHandler(logging.NullHandler())
    log.propagate = False


@functools.cache
def quick_remote():
    """Fabric's remote runner that neither waits nor spins while a command runs.

    Invoke's runner polls every ``input_sleep`` (10 ms) twice while a command runs: its stdin
    thread, which closes the command's stdin only at its next turn, and its wait for the exit.
    Here stdin is closed as soon as the local stream ends (a :class:`ScriptStream` ends at once),
    and both then sleep on events (the program's end, the channel's exit status) instead of
    waking every millisecond: a long command costs no CPU here."""
    from fabric.runners import Remote
    from invoke.util import isatty

    class QuickRemote(Remote):
        input_sleep = 0.001
        dead_thread_check = 0.05  # seconds between two looks at the reader threads

        def handle_stdin(self, input_, output, echo=False):
            if isatty(input_):  # a terminal: Invoke's own handling (echo, no end)
                return super().handle_stdin(input_, output, echo)
            while True:
                data = self.read_our_stdin(input_)
                if data:
                    self.write_proc_stdin(data)
                elif data is not None:  # the end of the stream
                    self.close_proc_stdin()
                    self.program_finished.wait()
                    return
                elif self.program_finished.is_set():
                    return
                else:
                    time.sleep(self.input_sleep)

        def wait(self):
            while not (self.process_is_finished or self.has_dead_threads):
                self.channel.status_event.wait(self.dead_thread_check)

        def start(self, command, shell, env, timeout=None):
            quick_acks(self.context.transport.sock)
            return super().start(command, shell, env, timeout)

    return QuickRemote


def quick_acks(sock) -> None:
    """Have the kernel acknowledge what ``sock`` receives at once (Linux ``TCP_QUICKACK``,
    which lasts a while, so it is asked again before each command's channel is opened).

    sshd does not set ``TCP_NODELAY`` for a command without a terminal, so its reply to a
    channel request waited for this end's delayed acknowledgement of what it sent before:
    40 ms on every command (measured on the lab: a no-op machine.setup 36 ms faster)."""
    if isinstance(sock, socket.socket) and hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def dial(conn, timeout: float) -> None:
    """Make the TCP connection of ``conn`` (a Fabric Connection reached directly: no ProxyJump
    or ProxyCommand) here, with ``TCP_NODELAY`` from the first byte, and hand it to paramiko.

    paramiko makes the connection itself and sets nothing on it; the key exchange and the
    authentication then send messages back to back, and Nagle's algorithm held each second
    one until the host's delayed acknowledgement of the first (measured on the lab: a no-op
    machine.setup 40 ms faster with the option set from the start)."""
    sock = socket.create_connection((conn.host, conn.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.connect_kwargs = dict(conn.connect_kwargs, sock=sock)


@dataclass(frozen=True)
class SshProfile:
    """How to reach hosts over SSH.

    :param ssh_config: OpenSSH client config file; None: ``~/.ssh/config`` and
        ``/etc/ssh/ssh_config`` (or what ``base`` already loaded: ``fab -S``).
    :param known_hosts: known_hosts files; empty: each host's ``UserKnownHostsFile`` from the
        SSH config, else ``~/.ssh/known_hosts``.
    :param allowed_hosts: the only addresses or names that may be connected to (after the SSH
        config's ``HostName``); None: any.
    :param base: a Fabric ``Config`` to start from (the one ``fab`` built from its flags and
        files); None: a fresh one.
    :param connect_timeout: seconds a host has to accept the connection, send its SSH banner
        and finish authentication (tinsnip's ``connect_timeout`` setting).
    """

    ssh_config: str | None = None
    known_hosts: tuple[str, ...] = ()
    allowed_hosts: frozenset[str] | None = None
    base: Any = None
    connect_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings, config=None) -> "SshProfile":
        """The profile of :class:`tinsnip_tasks.config.Settings`; ``config`` is the task's
        configuration, used as ``base`` when it is Fabric's (tasks run by ``fab``)."""
        base = config if hasattr(config, "base_ssh_config") else None
        profile = cls(settings.ssh_config, settings.known_hosts, settings.allowed_hosts, base,
                      settings.connect_timeout)
        profile.check_files()
        return profile

    def check_files(self) -> None:
        """:raises InputError: the SSH config file given does not exist or is not a file."""
        if self.ssh_config and not os.path.isfile(self.ssh_config):
            raise InputError(f"the SSH config file {self.ssh_config} (tinsnip.ssh_config) does "
                             "not exist or is not a file; create it or leave the setting out")

    def fabric_config(self):
        """The Fabric ``Config`` connections of this profile are made with."""
        from fabric import Config
        from paramiko import SSHConfig

        self.check_files()
        if self.base is None:
            cfg = Config(ssh_config=self._ssh_settings)
        else:
            cfg = self.base.clone()
            if self.ssh_config and not cfg._runtime_ssh_path:  # -S / ssh_config_path win
                cfg._set(base_ssh_config=SSHConfig.from_path(self.ssh_config))
        cfg.runners.remote = quick_remote()
        cfg.run.dry = False  # tinsnip reads facts in a dry run and plans its own changes
        cfg.timeouts.connect = self.connect_timeout
        # paramiko waits 15 s for the banner and 30 s for authentication whatever the TCP
        # timeout: a host that accepts the connection but never speaks SSH is given the same
        kwargs = dict(cfg.connect_kwargs or {})
        kwargs.setdefault("banner_timeout", self.connect_timeout)
        kwargs.setdefault("auth_timeout", self.connect_timeout)
        cfg.connect_kwargs = kwargs
        return cfg

    @property
    def _ssh_settings(self):
        """The OpenSSH client config as Fabric reads it (``ssh_config``, else the user's and
        the system's files), read once per version of those files."""
        files = ((self.ssh_config,) if self.ssh_config
                 else (os.path.expanduser("~/.ssh/config"), "/etc/ssh/ssh_config"))
        return _ssh_config_files(self.ssh_config, tuple(_version(f) for f in files))

    def resolver(self):
        """A function giving the ``HostName`` the SSH config names for a host alias (None
        when it names none), reading the config once."""
        self.check_files()
        lookup = self.fabric_config().base_ssh_config.lookup

        def hostname(alias: str) -> str | None:
            return lookup(alias).get("hostname")

        return hostname

    def known_hosts_files(self, conn) -> list[Path]:
        """The known_hosts files checked for ``conn``'s host key."""
        if self.known_hosts:
            return [Path(p) for p in self.known_hosts]
        listed = conn.ssh_config.get("userknownhostsfile", "")
        files = [Path(os.path.expanduser(p)) for p in listed.split()] if listed else []
        return files or [Path.home() / ".ssh" / "known_hosts"]

    def check_allowed(self, conn) -> None:
        """:raises InputError: ``conn`` would reach a host the profile does not allow, or would
        be reached through a ``ProxyCommand`` while only some hosts are allowed (a command can
        reach any host: nothing can check where it goes)."""
        if self.allowed_hosts is not None and isinstance(conn.gateway, str):
            raise InputError(f"{conn.original_host}: the SSH config reaches it through a "
                             f"ProxyCommand ({conn.gateway[:60]}), which tinsnip.allowed_hosts "
                             "cannot check; use ProxyJump through an allowed host instead")
        if self.allowed_hosts is None or conn.host in self.allowed_hosts:
            return
        shown = conn.original_host + (f" ({conn.host})" if conn.host != conn.original_host else "")
        raise InputError(f"{shown} is not one of the hosts tinsnip may reach "
                         f"(tinsnip.allowed_hosts: {', '.join(sorted(self.allowed_hosts))})")


def _hops(conn) -> list:
    """``conn`` and every Fabric Connection it is reached through (ProxyJump), target first."""
    from fabric import Connection

    chain = [conn]
    while isinstance(chain[-1].gateway, Connection):
        chain.append(chain[-1].gateway)
    return chain


def _version(path: str) -> tuple | None:
    """What tells one version of the file ``path`` from another (None: there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@functools.lru_cache(maxsize=None)
def _ssh_config_files(path: str | None, versions: tuple):
    """The OpenSSH client config Fabric reads (``path``, else the user's and the system's
    files), parsed once per ``versions`` of those files."""
    from fabric import Config

    return Config(runtime_ssh_path=path).base_ssh_config


@functools.lru_cache(maxsize=None)
def _known_hosts(path: str, version: tuple):
    """The known_hosts file ``path`` as paramiko reads it, read once per run (per version of
    the file): paramiko's reading costs time in the square of its lines."""
    import paramiko

    return paramiko.HostKeys(path)


def _check_keys(conn, profile: SshProfile) -> None:
    """Refuse unknown host keys on ``conn`` (Fabric's default accepts any): the client knows
    the keys the known_hosts files give for the name it checks (``host``, ``[host]:port``),
    the first file's first for each key type, as if it had loaded the files whole."""
    import paramiko

    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    name = conn.host if conn.port == paramiko.config.SSH_PORT else f"[{conn.host}]:{conn.port}"
    known = conn.client.get_host_keys()
    for f in profile.known_hosts_files(conn):
        version = _version(str(f))
        if version is not None:
            for keytype, key in (_known_hosts(str(f), version).lookup(name)
                                 or {}).items():
                if keytype not in (known.lookup(name) or {}):
                    known.add(name, keytype, key)


def connect(target: str, profile: SshProfile = SshProfile(), **kwargs):
    """Open an SSH connection to ``target`` (``[user@]host[:port]`` or an SSH config alias)
    with strict host key checking on it and on every ProxyJump hop, and TCP_NODELAY.

    :param kwargs: more arguments for Fabric's ``Connection`` (``user``, ``port``).
    :raises InputError: the target or a hop is not among the profile's allowed hosts.
    :raises UnreachableError: the host cannot be reached or its key is unknown or wrong.
    """
    import paramiko
    from fabric import Connection

    _quiet_paramiko()
    conn = Connection(target, config=profile.fabric_config(), **kwargs)
    name = conn.original_host
    for hop in _hops(conn):
        profile.check_allowed(hop)
        _check_keys(hop, profile)
    try:
        if not conn.gateway:
            dial(conn, profile.connect_timeout)
        conn.open()
    except paramiko.BadHostKeyException as e:
        raise UnreachableError(name, f"its host key does not match known_hosts ({e}); if the "
                                     "host was rebuilt, check the new key and replace the entry") from e
    except paramiko.SSHException as e:
        if any(w in str(e) for w in SILENT):
            raise UnreachableError(name, f"no SSH answer within {profile.connect_timeout:g} s "
                                         f"(tinsnip.connect_timeout): {e}") from e
        hint = (" (check its key, then add it to known_hosts)" if "known_hosts" in str(e) else "")
        raise UnreachableError(name, f"{e}{hint}") from e
    except (OSError, socket.timeout) as e:
        raise UnreachableError(name, str(e) or type(e).__name__) from e
    return conn


class Connections:
    """Connections reused across the steps of one run, opened on first use, closed at the end.

    ``fixed`` maps a target name to the Connection arguments it stands for (``fab -H`` gives
    host, user and port apart).
    """

    def __init__(self, profile: SshProfile = SshProfile(), fixed: dict | None = None):
        self.profile = profile
        self.fixed = dict(fixed or {})
        self._open: dict[str, Any] = {}

    def get(self, target: str):
        if target not in self._open:
            kwargs = self.fixed.get(target, {"host": target})
            self._open[target] = connect(profile=self.profile, target=kwargs["host"],
                                         **{k: v for k, v in kwargs.items() if k != "host"})
        return self._open[target]

    def close(self):
        for c in self._open.values():
            c.close()
        self._open.clear()
