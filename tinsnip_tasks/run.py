"""One task run as a session: the inventory, connections reused across steps, hosts, the recap.

Everything is checked before any host is contacted. Each host records what its steps did in a
:class:`~tinsnip_tasks.results.HostResult`; a failure stops that host's later steps, never
another host's. At the end every host used gets its recap line (also one that could not be
reached), or the JSON recap with ``--json``, and the exit code tells what went wrong (see
:mod:`tinsnip_tasks.results`).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from invoke.exceptions import Exit

from . import config as settings_mod
from .core.inventory import Inventory
from .core.target import check_target
from .errors import InputError, TinsnipError, UnreachableError
from .ops.base import DEFAULT_TIMEOUT, Host
from .output import Output, write_atomic
from .results import EXIT_INPUT, GroupResult


def override_target(c) -> tuple[str, dict] | tuple[None, None]:
    """The host given with ``fab -H`` (a Fabric Connection as context) as (the name shown for
    it, its Connection arguments: host, user, port), else (None, None)."""
    host = getattr(c, "original_host", None)
    if not host:
        return None, None
    default_user = c.ssh_config.get("user", c.config.user)
    default_port = int(c.ssh_config.get("port", c.config.port))
    name = host if ":" not in host or c.port == default_port else f"[{host}]"
    name = (f"{c.user}@" if c.user != default_user else "") + name
    name += f":{c.port}" if c.port != default_port else ""
    return name, {"host": host, "user": c.user, "port": c.port}


def parallel(fn, items: list) -> list:
    """``[fn(item) for item in items]``, each call in a thread of its own, all at once.

    Daemon threads joined in short waits: Ctrl-C reaches the caller at once and the process can
    end without waiting for a host that does not answer."""
    if len(items) < 2:
        return [fn(i) for i in items]
    results, errors = [None] * len(items), [None] * len(items)

    def call(k):
        try:
            results[k] = fn(items[k])
        except BaseException as e:  # handed to the caller below
            errors[k] = e

    threads = [threading.Thread(target=call, args=(k,), daemon=True) for k in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.05)
    for e in errors:
        if e is not None:
            raise e
    return results


class Run:
    """Context manager for one task run. ``with Run(c, dry=...) as run: ...``

    It reads the settings (:mod:`tinsnip_tasks.config`: the inventory, the SSH profile, sudo;
    ``json`` and ``verbose`` are also on when ``tinsnip.json`` or ``tinsnip.verbose`` are;
    ``tinsnip.recap_file`` names a file the JSON recap is also written to; Invoke's ``run.dry``
    makes it a dry run as ``dry`` does) and the inventory, holds the connections and the
    hosts' results, and prints the recap. What a task works on is resolved from the
    inventory by :mod:`tinsnip_tasks.resolve`.
    """

    def __init__(self, c, *, dry: bool = False, title: str = "", json: bool | None = None,
                 verbose: bool | None = None):
        self.dry, self.title = dry, title
        self.output = Output(json=bool(json), verbose=bool(verbose))
        self.recap_file = ""
        self.c, self.settings = c, None
        self.override, fixed = override_target(c)
        # Invoke's own setting for how long a command may run (`inv -T N`, timeouts.command)
        self.timeout = c.config.timeouts.command or DEFAULT_TIMEOUT
        from .connect import Connections  # SSH (paramiko) only for runs that connect

        self.conns = Connections(fixed={self.override: fixed} if self.override else None)
        self.hosts: dict[str, Host] = {}
        self.results = GroupResult(dry=dry, title=title)
        self.inv: Inventory | None = None

    def __enter__(self):
        from .connect import SshProfile

        try:
            self.settings = settings_mod.read(self.c, dry=self.dry)
            self.dry = self.results.dry = self.settings.dry
            # a flag turns a setting on; the config turns it on for every run
            self.output.json = self.output.json or self.settings.json
            self.output.verbose = self.output.verbose or self.settings.verbose
            self.recap_file = self.settings.recap_file
            self.conns.profile = SshProfile.from_settings(self.settings, self.c.config)
            self.inv = self.settings.load_inventory()
            # exports and fstab lines name hosts by what the other side can reach
            self.inv = self.inv.with_addresses(self.conns.profile.resolver())
            if self.override:
                check_target(self.override)
        except TinsnipError as e:
            raise Exit(f"error: {e}", code=EXIT_INPUT)
        if self.title:
            self.begin(self.title)
        return self

    def begin(self, title: str) -> None:
        """Name the run (its recap's title) and print its first line."""
        self.title = self.results.title = title
        self.output.info(f"== {title}{' (dry run: nothing is changed)' if self.dry else ''}")

    def __exit__(self, kind, error, tb):
        if isinstance(error, KeyboardInterrupt):
            self.results.interrupted = True
            self.output.error("interrupted")
        elif isinstance(error, TinsnipError) and error.host is None:
            # not a host's failure (those are recorded where they happen): bad input
            self.results.input_error = str(error)
            self.output.error(f"error: {error}")
        self.conns.close()
        self.output.recap(self.results)
        if self.recap_file:
            try:
                write_atomic(Path(self.recap_file),
                             (self.results.to_json(self.output.mask) + "\n").encode())
            except OSError as e:
                self.output.error(f"error: cannot write the recap file {self.recap_file}: "
                                  f"{e.strerror or e}")
        if error is not None and not isinstance(error, (TinsnipError, KeyboardInterrupt)):
            return False
        code = self.results.exit_code()
        if code:
            raise Exit(code=code)
        return error is not None

    # -- hosts -----------------------------------------------------------------------------
    def host(self, target: str) -> Host:
        """The :class:`Host` for an SSH target, connected on first use. A host that cannot be
        reached is recorded as such (its steps are skipped); in a dry run it is planned without
        facts instead."""
        if target not in self.hosts:
            self.connect([target])
        return self.hosts[target]

    def connect(self, targets) -> list[Host]:
        """Connect to every target not connected yet, all at once (one thread each)."""
        new = [t for t in dict.fromkeys(targets) if t not in self.hosts]
        outcomes = parallel(self._open, new)
        for target, (conn, problem, seconds) in zip(new, outcomes):
            if isinstance(problem, InputError):
                raise problem
            self._add(target, conn, problem)
            h = self.hosts[target]
            h.seconds += seconds  # the recap counts the time spent connecting too
            h.result.seconds = h.seconds
        return [self.hosts[t] for t in targets]

    def _open(self, target):
        started = time.monotonic()
        try:
            conn, problem = self.conns.get(target), None
        except (UnreachableError, InputError) as e:
            conn, problem = None, e
        return conn, problem, time.monotonic() - started

    def _add(self, target, conn, problem):
        unreachable = ""
        if isinstance(problem, UnreachableError):
            if self.dry:
                self.output.note(f"note: {problem}; the plan below lists steps without checking them")
                self.results.unchecked.append(target)  # a dry run that could not check: exit 3
            else:
                unreachable = str(problem)
        user = getattr(conn, "user", "root") if conn else "root"
        h = Host(target, conn, dry=self.dry, output=self.output, sudo=self.settings.use_sudo(user),
                 timeout=self.timeout, unreachable=unreachable)
        if unreachable:
            self.output.error(f"error: {unreachable}")
            h.result.error = unreachable
        self.hosts[target] = h
        self.results[target] = h.result
