"""Machine numbers from the station registry on the NAS, read once per sheet and environment
per run; a machine without a number gets the lowest free one, written back under the lock.

The registry commands themselves (read, assign under ``flock``) are the registry plan's; this
module decides when to call them and reports what they found as the NAS's ``registry`` step.
"""
from __future__ import annotations

from ..core import registry as reg
from ..core import smep as smep_mod
from ..core.inventory import Inventory
from ..core.smep import Smep
from ..errors import InputError, TinsnipError, UnreachableError
from ..ops.base import Host
from . import nas as nas_plan

STEP = "registry"


def _on_nas(nas: Host, command: str, path: str, show: str) -> dict | None:
    try:
        out = nas.execute(command, step=STEP, show=show).stdout
        return nas_plan.parse_registry_output(out, path)
    except TinsnipError as e:
        nas.fail(STEP, e)  # recorded as the NAS's failure; the caller cannot go on
        raise


def read_registry(nas: Host, path: str) -> dict | None:
    """The registry at ``path`` on the NAS, or None when it has none yet (defaults apply)."""
    return _on_nas(nas, nas_plan.read_registry_command(path), path, f"read {path}")


def assign_number(nas: Host, path: str, machine: str) -> dict:
    """Give ``machine`` the lowest free number in the registry at ``path`` under its lock;
    return the registry as it is afterwards."""
    return _on_nas(nas, nas_plan.assign_command(path, machine), path,
                   f"assign a number to {machine} in {path}")


class Numbers:
    """SMEP numbers of one run's machine-environments (see the module docstring)."""

    def __init__(self, inv: Inventory, *, dry: bool = False):
        self.inv, self.dry = inv, dry
        self.registries: dict[str, dict | None] = {}

    def needs_registry(self, machine: str) -> bool:
        return self.inv.machine(machine).number is None

    def smep(self, nas: Host | None, machine: str, env: str, *, assign: bool = False) -> Smep:
        """Numbers of ``machine`` in ``env``: its pin, else the registry on ``nas`` (None or
        an unreachable NAS in a dry run: the built-in defaults); with ``assign`` a machine the
        registry does not know gets a number.

        :raises InputError: unknown machine or environment, or no number without ``assign``.
        """
        smep_mod.validate_name("machine", machine)
        smep_mod.env_number(env)
        inv = self.inv
        inv.check_env(machine, env)
        if not self.needs_registry(machine):
            return inv.smep(machine, env)
        path = inv.registry_path(inv.sheet_of(machine).name, env)
        if nas is not None and nas.unreachable:
            raise UnreachableError(nas.name, f"the station registry {path} is on it")
        if nas is None or nas.conn is None:  # a dry run without the NAS: the defaults
            return inv.smep(machine, env, None)
        if path not in self.registries:
            self.registries[path] = read_registry(nas, path)
        registry = self.registries[path]
        try:
            found = inv.smep(machine, env, registry)
            source = path if registry is not None else "built-in default, no registry yet"
            nas.note(STEP, "ok", f"{machine}={found.machine_no:02d} ({source})")
            return found
        except InputError:
            if not assign:
                raise
        if self.dry:
            number, planned, _ = reg.assign(machine, registry if registry is not None
                                            else dict(reg.DEFAULT_MACHINES))
            nas.note(STEP, "would change", f"assign {machine}={number:02d} in {path}")
            return inv.smep(machine, env, planned)
        registry = self.registries[path] = assign_number(nas, path, machine)
        nas.note(STEP, "changed", f"{machine}={registry[machine]:02d} in {path}")
        return inv.smep(machine, env, registry)
