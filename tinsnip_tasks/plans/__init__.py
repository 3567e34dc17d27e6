"""What each step wants on a host, as resources built from SMEP numbers and the inventory.

A step is a plain function ``fn(t: Target) -> list[Resource]``, marked with :func:`step` to
give it its name (``machine.user``) and the earlier steps of the same machine-environment whose
changes its facts depend on (``machine.env`` lives on the mount, so it needs ``machine.mount``).
:func:`build` turns a step function and a target into the :class:`~tinsnip_tasks.ops.base.Step`
a host converges.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Callable

from ..core.inventory import Inventory, MachineEnv
from ..core.smep import Smep
from ..ops.base import Step


@dataclass(frozen=True)
class Target:
    """One machine-environment of an inventory, and the catalog service when a step needs one."""

    inv: Inventory
    smep: Smep
    service: str = ""
    wait: int | None = None  # seconds a deploy waits for the service to be healthy (--wait)
    #: the machine-environment as the task resolved it (:mod:`tinsnip_tasks.resolve`)
    resolved: MachineEnv | None = field(default=None, compare=False, repr=False)

    @cached_property
    def me(self) -> MachineEnv:
        """The machine-environment: as the task resolved it, else from the inventory."""
        return self.resolved or self.inv.machine_env(self.smep.machine, self.smep.env)

    @property
    def scope(self) -> str:
        return self.smep.user

    @cached_property
    def rendered(self):
        """The service's files (:class:`~tinsnip_tasks.plans.catalog.Rendered`), rendered once
        per target."""
        from .catalog import render_service

        return render_service(self.inv, self.smep, self.service)


StepFn = Callable[[Target], list]


def step(name: str, *, needs: tuple[str, ...] = (), before: Callable | None = None,
         after: Callable | None = None):
    """Mark ``fn`` as the step ``name`` whose facts depend on the steps in ``needs``.

    ``before(host, target)``, when given, runs only when the step has something to change, just
    before it changes it (the preflight before ``service.up`` starts anything); it refuses by
    raising. ``after(host, failure, target)`` runs just after the step's commands ran
    (``failure``: their error, or None); it fails the step by raising (the health gate)."""

    def mark(fn):
        fn.step_name, fn.needs, fn.before, fn.after = name, tuple(needs), before, after
        return fn

    return mark


def build(fn: StepFn, t: Target) -> Step:
    """The step ``fn`` for target ``t`` (bad input raises here, before any host is touched)."""
    label = t.scope + (f" {t.service}" if t.service else "")
    before = partial(fn.before, target=t) if fn.before else None
    after = partial(fn.after, target=t) if getattr(fn, "after", None) else None
    return Step(fn.step_name, tuple(fn(t)), scope=t.scope, label=label, needs=fn.needs,
                before=before, after=after)
