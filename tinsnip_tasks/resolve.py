"""A task's arguments resolved once, at the door, into the values its steps are built from.

A task names a machine and an environment (or a ``--limit``); here they become
:class:`~tinsnip_tasks.core.inventory.MachineEnv` values, each validated once against the
inventory, with the environment taken from ``--env`` or the setting ``tinsnip.env``. Their SMEP
numbers come from the station registry on the NAS (:class:`~tinsnip_tasks.plans.numbers.Numbers`)
and give the :class:`~tinsnip_tasks.plans.Target` the steps are built from. Below this module
nothing asks the inventory again with a name the user typed.
"""
from __future__ import annotations

from contextlib import contextmanager

from . import config
from .core.inventory import Inventory, MachineEnv
from .errors import TinsnipError
from .ops.base import Step
from .plans import Target, build
from .plans.numbers import Numbers
from .plans.secrets import secret_values
from .run import Run, parallel


@contextmanager
def machine_env(c, task: str, machine: str, env: str = "", *, detail: str = "",
                nas_task: bool = False, data_on_stdout: bool = False, **run_options):
    """``with machine_env(c, "machine.setup", machine, env, dry=...) as (run, me):`` opens the
    run (:class:`~tinsnip_tasks.run.Run`, with ``run_options``) and resolves the
    machine-environment; its title is the task, the machine, the environment and ``detail``.

    ``fab -H HOST`` replaces the machine host, or the NAS for a NAS task (``nas_task``). With
    ``data_on_stdout`` standard output carries the task's data alone (the title, step lines
    and recap go to standard error). The values of the machine-environment's secrets file are
    masked in everything the run prints from here on.
    """
    run = Run(c, **run_options)
    if data_on_stdout:
        run.output.out = run.output.err
    with run:
        env = run.settings.environment(env)
        run.begin(" ".join(filter(None, (task, machine, env, detail))))
        me = run.inv.machine_env(machine, env, host=None if nas_task else run.override,
                                 nas_host=run.override if nas_task else None)
        run.output.mask.add(secret_values(run.inv, *me.key))
        yield run, me


def offline(c, machine: str, env: str = "") -> tuple[Inventory, MachineEnv]:
    """For a task that contacts no host: the inventory and the machine-environment, resolved
    as :func:`machine_env` resolves them.

    :raises InputError: a setting, the inventory, the machine or the environment is bad.
    """
    settings = config.read(c)
    inv = settings.load_inventory()
    return inv, inv.machine_env(machine, settings.environment(env))


def numbers(run: Run, me: MachineEnv, *, assign: bool = False) -> Target:
    """The :class:`Target` of ``me`` from the station registry on its NAS (connected here); with
    ``assign`` a machine the registry does not number yet gets its number."""
    nas = run.host(me.nas_host)
    return Target(run.inv, Numbers().smep(nas, me, assign=assign), resolved=me)


def target(run: Run, me: MachineEnv, *, service: str = "") -> Target:
    """The :class:`Target` of ``me`` (and ``service``), its NAS and machine host connected at
    once, its numbers read from the station registry."""
    nas, _ = run.connect([me.nas_host, me.host])  # at once; the NAS first in the recap
    return Target(run.inv, Numbers().smep(nas, me), service, resolved=me)


def steps(run: Run, me: MachineEnv, fns, *, assign: bool = False, service: str = "",
          wait: int | None = None, then=None) -> list[Step]:
    """The steps ``fns`` (step functions) of ``me`` (and ``service``), built once; the NAS and
    the machine host are connected at once.

    Once the NAS and the machine host are connected (both at once), the steps are built with
    the numbers the registry will most likely give (:meth:`MachineEnv.known`); while the
    registry is read, their facts
    are read on the machine host. When the registry gives those numbers (the usual case), these
    steps are the ones returned, their facts read already; otherwise they are built again with
    the registry's numbers and read their own. ``then(nas)``, when given, runs on the NAS right
    after the numbers, while the machine host's facts are still being read."""
    guess = me.known()

    def build_ahead() -> list[Step]:
        if not guess:
            return []
        try:
            return [build(fn, Target(run.inv, guess, service, wait, me)) for fn in fns]
        except TinsnipError:
            return []  # built (and the problem reported) again below

    # the NAS first in the recap. The steps are built after: built while the hosts answer,
    # they held the connections up longer than they took (one Python thread runs at a time).
    nas, h = run.connect([me.nas_host, me.host])
    ahead = build_ahead()

    def numbers():
        smep = Numbers().smep(nas, me, assign=assign)
        if then is not None:
            then(nas)
        return smep

    if ahead and h is not nas and h.conn is not None and not h.failed:
        def facts_ahead():
            try:
                h.read_ahead([r for s in ahead for r in s.resources])
            except TinsnipError:
                ahead.clear()  # built (and the problem reported) again below

        _, smep = parallel(lambda fn: fn(), [facts_ahead, numbers])
    else:
        smep = numbers()
    if ahead and smep == guess:
        return ahead
    t = Target(run.inv, smep, service, wait, me)
    return [build(fn, t) for fn in fns]


def machine_envs(run: Run, keys) -> list[MachineEnv]:
    """The :class:`MachineEnv` of each ``(machine, env)`` of a selection, their secrets masked."""
    mes = [run.inv.machine_env(machine, env) for machine, env in keys]
    for me in mes:
        run.output.mask.add(secret_values(run.inv, *me.key))
    return mes


def targets(run: Run, mes: list[MachineEnv], *, assign: bool) -> dict:
    """``{(machine, env): Target}`` of every machine-environment whose NAS answered: each NAS
    reads all its registries in one command; with ``assign`` the machines without a number get
    theirs in one more, under the registries' locks. The hosts must be connected already."""
    found, by_nas = {}, {}
    for me in mes:
        by_nas.setdefault(me.nas_host, []).append(me)
    book = Numbers()
    for nas_target, group in by_nas.items():
        nas = run.hosts[nas_target]
        if not nas.unreachable:
            if assign:
                book.assign(nas, group)
            else:
                book.prefetch(nas, [me.registry for me in group])
        for me in group:
            if nas.failed:
                break
            found[me.key] = Target(run.inv, book.smep(nas, me, assign=assign), resolved=me)
    return found
