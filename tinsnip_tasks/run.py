"""One run of a task: validated input, the inventory, reused connections, the per-host report.

Everything is checked before any host is contacted; a failure on a host stops that run with a
``failed`` step and a non-zero exit, after printing ``HOST: ok=N changed=N failed=N ...`` lines.
"""
from __future__ import annotations

from typing import Callable

from invoke.exceptions import Exit

from .connect import Connections, address_of
from .core import registry as reg
from .core import smep as smep_mod
from .core.inventory import Inventory, load_inventory
from .core.render import catalog
from .errors import InputError, TinsnipError, UnreachableError
from .ops.base import DEFAULT_TIMEOUT, Host
from .plans import nas as nas_plan


def override_target(c) -> str | None:
    """The host given with ``fab -H`` (a Fabric Connection as context), else None."""
    return getattr(c, "original_host", None) or None


class Run:
    """Context manager for one task run. ``with Run(c, dry=...) as run: ...``"""

    def __init__(self, c, *, dry: bool = False, title: str = "", out: Callable = print):
        self.dry, self.out, self.title = dry, out, title
        self.override = override_target(c)
        # Invoke's own setting for how long a command may run (`inv -T N`, timeouts.command)
        self.timeout = c.config.timeouts.command or DEFAULT_TIMEOUT
        self.conns = Connections()
        self.hosts: dict[str, Host] = {}
        self.inv: Inventory | None = None

    def __enter__(self):
        try:
            self.inv = load_inventory(catalog=catalog())
        except TinsnipError as e:
            raise Exit(f"error: {e}", code=2)
        if self.title:
            self.out(f"== {self.title}{' (dry run: nothing is changed)' if self.dry else ''}")
        return self

    def __exit__(self, kind, error, tb):
        failed = False
        if isinstance(error, TinsnipError):
            failed = True
            if self.hosts and not isinstance(error, InputError):
                host = getattr(error, "host", None)
                target = self.hosts.get(host) or next(reversed(self.hosts.values()))
                target.fail(getattr(error, "step", "") or "step", error)
            self.out(f"error: {error}")
        for h in self.hosts.values():
            self.out(h.summary())
            failed = failed or h.counts["failed"] > 0
        self.conns.close()
        if isinstance(error, Exit) or (error is not None and not isinstance(error, TinsnipError)):
            return False
        if isinstance(error, InputError):
            raise Exit(code=2)
        if failed:
            raise Exit(code=1)
        return False

    # -- hosts -----------------------------------------------------------------------------
    def host(self, target: str) -> Host:
        """The :class:`Host` for an SSH target; in a dry run an unreachable host is planned
        without facts instead of failing."""
        if target in self.hosts:
            return self.hosts[target]
        try:
            conn = self.conns.get(target)
        except UnreachableError as e:
            if not self.dry:
                raise
            self.out(f"note: {e}; the plan below lists steps without checking them")
            conn = None
        user = getattr(conn, "user", "root") if conn else "root"
        h = Host(target, conn, dry=self.dry, out=self.out, sudo=user != "root",
                 timeout=self.timeout)
        self.hosts[target] = h
        return h

    def machine_host(self, machine: str) -> Host:
        return self.host(self.override or self.inv.machine(machine).host)

    def nas_host(self, machine: str, *, allow_override: bool = False) -> Host:
        target = self.override if (allow_override and self.override) else self.inv.nas_of(machine).host
        return self.host(target)

    # -- numbers ---------------------------------------------------------------------------
    def smep(self, machine: str, env: str, *, assign: bool = False):
        """SMEP numbers of a machine-environment. The station registry on the NAS is read when
        the machine has no pinned number; with ``assign`` a machine without a number gets the
        lowest free one, written back under a lock."""
        smep_mod.validate_name("machine", machine)
        smep_mod.env_number(env)
        inv = self.inv
        inv.check_env(machine, env)
        m = inv.machine(machine)
        if m.number is not None:
            return inv.smep(machine, env)
        sheet = inv.sheet_of(machine)
        path = inv.registry_path(sheet.name, env)
        nas = self.nas_host(machine)
        if nas.conn is None:  # dry run, NAS unreachable: the built-in defaults
            return inv.smep(machine, env, None)
        out = nas.run(nas_plan.read_registry_command(path), step="registry").stdout
        registry = nas_plan.parse_registry_output(out, path)
        try:
            found = inv.smep(machine, env, registry)
            source = path if registry is not None else "built-in default, no registry yet"
            nas.note("registry", "ok", f"{machine}={found.machine_no:02d} ({source})")
            return found
        except InputError:
            if not assign:
                raise
        if self.dry:
            number, planned, _ = reg.assign(machine, registry if registry is not None
                                            else dict(reg.DEFAULT_MACHINES))
            nas.note("registry", "would change", f"assign {machine}={number:02d} in {path}")
            return inv.smep(machine, env, planned)
        out = nas.run(nas_plan.assign_command(path, machine), step="registry").stdout
        registry = nas_plan.parse_registry_output(out, path)
        nas.note("registry", "changed", f"{machine}={registry[machine]:02d} in {path}")
        return inv.smep(machine, env, registry)

    def station(self, sheet: str, env: str):
        """(SMEP of the station, its folder, its registry path, the sheet's machine hosts, the
        NAS target) for a sheet's station in ``env`` (prod or test)."""
        smep_mod.validate_name("sheet", sheet)
        if env not in ("prod", "test"):
            raise InputError(f"the station has prod and test environments, not {env!r}")
        inv = self.inv
        if sheet not in inv.sheets:
            raise InputError(f"sheet {sheet!r} is not in {inv.path}; known: {', '.join(inv.sheets)}")
        s = inv.sheets[sheet]
        smep = smep_mod.make_smep(sheet, reg.STATION, env, 0, pinned_sheet_no=s.number)
        clients = sorted({address_of(m.host) for m in inv.machines.values() if m.sheet == sheet})
        if not clients:
            raise InputError(f"sheet {sheet!r} has no machines in {inv.path} to export to")
        return (smep, f"{s.volume}/{sheet}/station/{env}", inv.registry_path(sheet, env),
                clients, inv.nas[s.nas].host)

    def export_client(self, machine: str) -> str:
        return address_of(self.inv.machine(machine).host)

    def nas_address(self, machine: str) -> str:
        return address_of(self.inv.nas_of(machine).host)

