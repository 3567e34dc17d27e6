"""The whole inventory as one plan: what ``--limit`` selects, the NAS's steps (each sheet's
station, every machine-environment's tree and export) and each machine host's steps in the
seed's order (per machine-environment: user, mount, XDG links, Docker, machine.env, then its
services: files, build context, image, compose project, forwards).

Pure: the numbers come in as :class:`~tinsnip_tasks.plans.Target` objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.inventory import Inventory
from ..core.limit import Item, parse_limit, select as select_items
from ..core.smep import ENVIRONMENTS
from ..errors import InputError
from ..ops.base import Step
from . import Target, build
from . import machine as machine_plan
from . import nas as nas_plan
from . import service as service_plan

STATION_ENVS = ("prod", "test")


def items(inv: Inventory) -> list[Item]:
    """Every machine-environment of the inventory and every service in it, in inventory order."""
    out = []
    for m in inv.machines.values():
        for env in sorted(m.environments, key=ENVIRONMENTS.get):
            out.append(Item(m.host, m.name, env))
            out += [Item(m.host, m.name, env, s) for s in m.services]
    return out


@dataclass
class Selection:
    """The machine-environments to converge, and the services to deploy in each."""

    envs: list[tuple[str, str]] = field(default_factory=list)
    services: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def sheets(self, inv: Inventory) -> list[str]:
        return list(dict.fromkeys(inv.sheet_of(m).name for m, _ in self.envs))


def select(inv: Inventory, limit: str = "") -> Selection:
    """What ``limit`` selects. A selected service brings its machine-environment's setup along
    (it needs it); a selected machine-environment brings all its services.

    :raises InputError: a bad pattern, or nothing selected.
    """
    chosen = select_items(items(inv), parse_limit(limit))
    if not chosen:
        raise InputError(f"--limit {limit!r} selects nothing in {inv.path}")
    sel = Selection()
    for i in chosen:
        key = (i.machine, i.env)
        if key not in sel.services:
            sel.envs.append(key)
            sel.services[key] = []
        if i.service:
            sel.services[key].append(i.service)
    return sel


def stations(inv: Inventory, sel: Selection) -> list[tuple[str, str]]:
    """(sheet, env) of the stations to set up: each selected sheet's prod station, and its test
    station when a selected machine-environment of it is in test."""
    out = []
    for sheet in sel.sheets(inv):
        used = {e for m, e in sel.envs if inv.sheet_of(m).name == sheet}
        out += [(sheet, env) for env in STATION_ENVS if env == "prod" or env in used]
    return out


def nas_steps(inv: Inventory, sel: Selection, targets: dict) -> dict[str, list[Step]]:
    """The NAS hosts' steps: stations first, then each machine-environment's tree and export."""
    out: dict[str, list[Step]] = {}
    for sheet, env in stations(inv, sel):
        st = inv.station(sheet, env)
        out.setdefault(st.nas_host, []).append(build(nas_plan.station, Target(inv, st.smep)))
    for key in sel.envs:
        t = targets[key]
        out.setdefault(t.me.nas_host, []).extend(build(fn, t) for fn in nas_plan.SETUP)
    return out


def machine_steps(inv: Inventory, sel: Selection, targets: dict,
                  wait: int | None = None, pull: bool = False) -> dict[str, list[Step]]:
    """Each machine host's steps, per machine-environment in the seed's order (``wait``: the
    seconds each service's health gate waits, when given; with ``pull``, each service's images
    are pulled first)."""
    out: dict[str, list[Step]] = {}
    for key in sel.envs:
        t = targets[key]
        steps = out.setdefault(t.me.host, [])
        steps += [build(fn, t) for fn in machine_plan.SETUP]
        for service in sel.services[key]:
            st = Target(inv, t.smep, service, wait, t.resolved)
            steps += [s for s in (build(fn, st) for fn in service_plan.deploy_steps(pull))
                      if s.resources]
    return out
