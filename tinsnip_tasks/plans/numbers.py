"""Machine numbers from the station registry on the NAS, read once per sheet and environment
per run; a machine without a number gets the lowest free one, written back under the lock.

The registry's commands and resources are the registry plan's (plans/registry.py), the rule for
numbers is core/registry.py's; this module decides when to call them and reports what they found
as the NAS's ``registry`` step. A pinned machine's registry is read too: its pin is checked
against it, and a setup writes it in.
"""
from __future__ import annotations

from ..core import registry as reg
from ..core.inventory import MachineEnv
from ..core.smep import Smep
from ..errors import TinsnipError, UnreachableError
from ..ops.base import MARK, Host, Step, split_facts
from . import registry as registry_plan

STEP = "registry"
#: How often an assignment reads the registry again after another setup changed it first.
RACE_TRIES = 20


def read_registry(nas: Host, path: str) -> dict | None:
    """The registry at ``path`` on the NAS, or None when it has none yet (defaults apply)."""
    try:
        out = nas.execute(registry_plan.read_command(path), step=STEP, show=f"read {path}").stdout
        return registry_plan.parse_output(out, path)
    except (TinsnipError, ValueError) as e:
        nas.fail(STEP, e)  # recorded as the NAS's failure; the caller cannot go on
        raise _failed(nas, e)


def assign_numbers(nas: Host, wanted) -> list[registry_plan.RegistryEntry]:
    """Write each machine's number into its registry when it is not there, all in one round:
    ``wanted`` holds ``(path, machine, pin, reserved)``; the number is the pin, else the lowest
    free one (never one in ``reserved``). Edits of one registry file are one write, under its
    lock. Returns the entries, whose ``number`` and ``registry`` are what the registry holds
    afterwards (or would, in a dry run)."""
    batches = [registry_plan.entry(path, machine, pin, reserved)
               for path, machine, pin, reserved in wanted]
    nas.converge([Step(STEP, tuple(r), label=r[-1].name) for r in batches], tries=RACE_TRIES)
    for r in batches:
        if nas.failed or r[-1].number is None:
            raise _failed(nas, TinsnipError(nas.result.error or f"no number for {r[-1].name}"))
    return [r[-1] for r in batches]


def assign_number(nas: Host, path: str, machine: str, pin: int | None = None,
                  reserved=()) -> registry_plan.RegistryEntry:
    """:func:`assign_numbers` for one machine."""
    return assign_numbers(nas, [(path, machine, pin, reserved)])[0]


def _failed(nas: Host, error: Exception) -> TinsnipError:
    """The error that stops the run, already recorded as the NAS's ``registry`` failure."""
    err = error if isinstance(error, TinsnipError) else TinsnipError(str(error))
    err.host, err.step = err.host or nas.name, err.step or STEP
    return err


class Numbers:
    """SMEP numbers of one run's machine-environments (see the module docstring)."""

    def __init__(self):
        self.registries: dict[str, dict | None] = {}
        self.assigned: set[tuple[str, str]] = set()  # (registry, machine) settled by assign()

    def prefetch(self, nas: Host, paths) -> None:
        """Read every registry in ``paths`` on ``nas`` in one command (those not read yet)."""
        paths = [p for p in dict.fromkeys(paths) if p not in self.registries]
        if not paths or nas.conn is None or nas.failed:
            return
        script = "\n".join(f"echo {MARK}{i}; {registry_plan.read_command(p)}"
                            for i, p in enumerate(paths))
        try:
            out = nas.execute(script, step=STEP, show="read " + ", ".join(paths), facts=True).stdout
            for path, text in zip(paths, split_facts(out, len(paths))):
                self.registries[path] = registry_plan.parse_output(text, path)
        except (TinsnipError, ValueError) as e:
            nas.fail(STEP, e)
            raise _failed(nas, e)

    def assign(self, nas: Host, mes) -> None:
        """Give every machine of ``mes`` its number on ``nas`` in one transaction: all their
        registries read in one command and, when some machine is missing from one, every missing
        entry written in one more (all the entries of one registry file in one write, under its
        lock, once it is checked to be still what was read; else read again). Their numbers are
        then what :meth:`smep` gives, without asking again."""
        wanted, seen = [], set()
        for me in mes:
            key = (me.registry, me.machine.name)
            if key not in seen and me.registry not in self.registries:
                seen.add(key)
                wanted.append((*key, me.machine.number, me.others))
        if not wanted or nas.conn is None or nas.failed:
            return
        for done in assign_numbers(nas, wanted):
            self.registries[done.path] = done.registry  # the last entry's: all of them
            self.assigned.add((done.path, done.name))

    def smep(self, nas: Host | None, me: MachineEnv, *, assign: bool = False) -> Smep:
        """Numbers of the machine-environment ``me``: its pin or its registry entry, from the
        registry on ``nas``; with ``assign`` the machine's number is written into the registry
        when it is not there. Without the NAS (None, or not connected: a dry run that could
        not reach it) the numbers known without it are used; a machine the registry would
        number gets the number an empty registry would give, noted as assigned on the NAS.

        :raises InputError: a pin the registry contradicts, or no number without ``assign``.
        :raises UnreachableError: the NAS could not be reached (not in a dry run).
        """
        machine, path = me.machine.name, me.registry
        if nas is not None and nas.unreachable:
            raise UnreachableError(nas.name, f"the station registry {path} is on it")
        if nas is None or nas.conn is None:
            if me.machine.known_number is not None or not assign:
                return me.smep()
            smep = me.provisional()
            if nas is not None:
                nas.note(STEP, "unchecked", f"{machine}: number assigned on the NAS ({path} "
                         f"could not be read; the plan shows {smep.machine_no:02d}, what an "
                         "empty registry gives)", label=machine)
            return smep
        if (path, machine) in self.assigned:
            return me.smep(self.registries[path])
        if assign and path in self.registries:
            # read already in this run: write only when the machine is not in it yet
            _, _, assign = reg.assign(machine, self.registries[path], me.machine.number,
                                      me.others)
        if assign:
            done = assign_number(nas, path, machine, me.machine.number, me.others)
            self.registries[path] = done.registry
            return me.smep(done.registry)
        if path not in self.registries:
            self.registries[path] = read_registry(nas, path)
        registry = self.registries[path]
        found = me.smep(registry)
        source = path if reg.authoritative(registry) else "built-in default, no registry yet"
        nas.note(STEP, "ok", f"{machine}={found.machine_no:02d} ({source})")
        return found
