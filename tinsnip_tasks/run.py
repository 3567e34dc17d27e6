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
from dataclasses import replace
from pathlib import Path

from invoke.exceptions import Exit

from . import config as settings_mod
from .core.inventory import Inventory, load_inventory
from .core.render import catalog
from .core.target import check_target
from .errors import InputError, TinsnipError, UnreachableError
from .ops.base import DEFAULT_TIMEOUT, Host
from .output import Output, write_atomic
from .plans.numbers import Numbers
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


def setting(c, name: str, default=None):
    """``tinsnip.<name>`` from Invoke's configuration (files, env vars, ``ns.configure``)."""
    try:
        section = c.config["tinsnip"]
        return section[name] if name in section else default
    except (KeyError, TypeError, AttributeError):
        return default


class Run:
    """Context manager for one task run. ``with Run(c, dry=...) as run: ...``

    ``json`` and ``verbose`` are also on when the config's ``tinsnip.json`` or ``tinsnip.verbose`` are;
    ``tinsnip.recap_file`` names a file the JSON recap is also written to. The ``tinsnip``
    section (:mod:`tinsnip_tasks.config`) also gives the inventory, the SSH profile and sudo;
    Invoke's ``run.dry`` makes it a dry run as ``dry`` does.
    """

    def __init__(self, c, *, dry: bool = False, title: str = "", json: bool | None = None,
                 verbose: bool | None = None):
        self.dry, self.title = dry, title
        # a flag turns a setting on; the config turns it on for every run
        self.output = Output(json=bool(json or setting(c, "json")),
                             verbose=bool(verbose or setting(c, "verbose")))
        self.recap_file = setting(c, "recap_file") or ""
        self.c, self.settings = c, None
        self.override, fixed = override_target(c)
        # Invoke's own setting for how long a command may run (`inv -T N`, timeouts.command)
        self.timeout = c.config.timeouts.command or DEFAULT_TIMEOUT
        from .connect import Connections  # SSH (paramiko) only for runs that connect

        self.conns = Connections(fixed={self.override: fixed} if self.override else None)
        self.hosts: dict[str, Host] = {}
        self.results = GroupResult(dry=dry, title=title)
        self.inv: Inventory | None = None
        self.numbers: Numbers | None = None

    def __enter__(self):
        from .connect import SshProfile

        try:
            self.settings = settings_mod.read(self.c, dry=self.dry)
            self.dry = self.results.dry = self.settings.dry
            self.conns.profile = SshProfile.from_settings(self.settings, self.c.config)
            self.inv = replace(load_inventory(self.settings.inventory, catalog=catalog()),
                               age_identity=self.settings.age_identity)
            # exports and fstab lines name hosts by what the other side can reach
            self.inv = self.inv.with_addresses(self.conns.profile.resolver())
            if self.override:
                check_target(self.override)
        except TinsnipError as e:
            raise Exit(f"error: {e}", code=EXIT_INPUT)
        self.numbers = Numbers(self.inv, dry=self.dry)
        if self.title:
            self.output.info(f"== {self.title}{' (dry run: nothing is changed)' if self.dry else ''}")
        return self

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

    def mask_secrets(self, machine: str, env: str) -> None:
        """Hide every value of the machine-environment's secrets file in all this run prints
        and records. A file that cannot be read (or decrypted) gives no value to any step, so
        none can be printed: the step that needs one refuses it, naming the problem."""
        from .plans.service import read_secrets, secrets_path

        try:
            values = read_secrets(secrets_path(self.inv, machine, env), self.inv.age_identity)
        except InputError:
            return
        self.output.mask.add(values.values())

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

    def machine_host(self, machine: str) -> Host:
        return self.host(self.machine_target(machine))

    def machine_target(self, machine: str) -> str:
        return self.override or self.inv.machine(machine).host

    def nas_target(self, machine: str, *, allow_override: bool = False) -> str:
        return self.override if (allow_override and self.override) else self.inv.nas_of(machine).host

    def nas_host(self, machine: str, *, allow_override: bool = False) -> Host:
        return self.host(self.nas_target(machine, allow_override=allow_override))

    # -- numbers ---------------------------------------------------------------------------
    def smep(self, machine: str, env: str, *, assign: bool = False, connect_machine=False):
        """SMEP numbers of a machine-environment; the station registry is read (once per run)
        only when the machine has no pinned number. With ``connect_machine`` the machine host
        is connected at the same time as the NAS, so the registry read adds no wait."""
        self.inv.check_env(machine, env)
        needs = self.numbers.needs_registry(machine)
        targets = [self.nas_target(machine)] if needs else []
        if connect_machine:
            targets.append(self.machine_target(machine))
        self.connect(targets)
        nas = self.hosts[self.nas_target(machine)] if needs else None
        return self.numbers.smep(nas, machine, env, assign=assign)

    def target(self, machine: str, env: str, *, assign: bool = False, service: str = "",
               steps=()):
        """The :class:`~tinsnip_tasks.plans.Target` of a machine-environment (and service).

        The NAS (its registry decides the numbers) and the machine host are reached at the same
        time: while the registry is read, the facts of ``steps`` (step functions) are read on
        the machine host with the numbers the registry will most likely give. When it gives
        those, the steps use these facts; otherwise they read their own."""
        from .plans import Target, build

        self.inv.check_env(machine, env)
        self.mask_secrets(machine, env)
        guess = self.numbers.guess(machine, env)
        machine_target, nas_target = self.machine_target(machine), self.nas_target(machine)
        if not (guess and steps) or machine_target == nas_target:
            return Target(self.inv, self.smep(machine, env, assign=assign, connect_machine=True),
                          service)

        self.connect([nas_target, machine_target])  # at once; the NAS first in the recap

        def facts_ahead():
            h = self.hosts[machine_target]
            if h.conn is not None and not h.failed:
                try:
                    t = Target(self.inv, guess, service)
                    h.read_ahead([r for fn in steps for r in build(fn, t).resources])
                except TinsnipError:
                    pass  # read (and reported) again by the steps themselves

        def numbers():
            return self.smep(machine, env, assign=assign)

        _, smep = parallel(lambda fn: fn(), [facts_ahead, numbers])
        return Target(self.inv, smep, service)
