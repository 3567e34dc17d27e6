"""The site report: what ``site.status`` found, per host and machine-environment, as one data
document (``--json``) and one self-contained HTML page (``--html``).

Made from the run's results (:mod:`tinsnip_tasks.results`: the checklist items and the facts
they carry), the inventory and the SMEP numbers, never from a host directly and never from a
``.env`` or secrets file. Pure: data in, data or text out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.inventory import Inventory
from ..core.render import render
from ..core.smep import ENVIRONMENTS
from ..results import GroupResult, HostResult, recap_line
from . import site as site_plan
from .status import ITEMS

TEMPLATE = "report/site.html.j2"
TITLES = dict(ITEMS)
MACHINE_NUMBERS = 100


def when(epoch: float | int) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS UTC`` (``""`` for 0: unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else ""


def started(text: str) -> str:
    """Docker's RFC 3339 start time shortened to seconds (``""`` for the zero time)."""
    if not text or text.startswith("0001-"):
        return ""
    return text[:19].replace("T", " ") + " UTC"


@dataclass(frozen=True)
class Env:
    """One selected machine-environment: its numbers (None when its NAS gave none)."""

    machine: str
    env: str
    smep: object | None


def _env_steps(r: HostResult | None, scope: str) -> list:
    return [s for s in (r.steps if r else ()) if s.label == scope
            or (s.step in ("status", "site") and s.detail.split(":")[0] == scope)]


def _services(inv: Inventory, machine: str, found: dict) -> list[dict]:
    from .catalog import service_entry

    containers = found.get("containers", [])
    deployed = found.get("deployed", {})
    # what status.image found: the digest each container's image has, and a newer one
    digests = {(i["project"], i["id"]): i for i in found.get("images", [])}
    names = list(inv.machine(machine).services)
    names += [p for p in dict.fromkeys(c["project"] for c in containers) if p not in names]
    names += [p for p in deployed if p not in names]
    out = []
    for name in names:
        mine = [c for c in containers if c["project"] == name]
        image = ""
        if name in inv.machine(machine).services:
            image = service_entry(inv, machine, name).image
        health = sorted({c["health"] for c in mine if c["health"] != "none"})
        known = [digests.get((name, c["image_id"]), {}) for c in mine]
        states = sorted({c["state"] for c in mine})
        out.append({
            "name": name,
            "in_inventory": name in inv.machine(machine).services,
            "image": image or ", ".join(sorted({c["image"] for c in mine})),
            "deployed": when(deployed.get(name, 0)),
            "state": ", ".join(states) or ("not deployed" if name not in deployed else "no containers"),
            "health": ", ".join(health) or ("no healthcheck" if mine else ""),
            "digest": ", ".join(sorted({k["digest"] for k in known if k.get("digest")})),
            "newer": ", ".join(sorted({k["newer"] for k in known if k.get("newer")})),
            "containers": [{"name": c["name"], "image": c["image"], "image_id": c["image_id"],
                            "digest": k.get("digest", ""), "newer": k.get("newer", ""),
                            "health": c["health"], "state": c["state"],
                            "restarts": c["restarts"], "started": started(c["started"])}
                           for c, k in zip(mine, known)],
        })
    return out


def _env_model(inv: Inventory, e: Env, r: HostResult | None) -> dict:
    scope = f"{e.machine}-{e.env}"
    steps = _env_steps(r, scope)
    items, found, notes = [], {}, []
    for s in steps:
        if s.step.startswith("status."):
            item = s.step.split(".", 1)[1]
            title = TITLES.get(item, item)
            detail = s.detail[len(title) + 2:] if s.detail.startswith(title + ": ") else s.detail
            items.append({"item": item, "title": title, "status": s.status, "detail": detail})
            found = {**found, **s.data}
        else:
            notes.append({"step": s.step, "status": s.status, "detail": s.detail})
    failed = sum(1 for i in items if i["status"] == "failed")
    state = "failed" if failed else "ok" if items else \
        (notes[0]["status"] if notes else "unchecked")
    smep = e.smep
    return {
        "name": scope, "machine": e.machine, "env": e.env,
        "sheet": inv.sheet_of(e.machine).name,
        "uid": smep.uid if smep else None,
        "ports": [smep.ports[0], smep.ports[-1]] if smep else None,
        "state": state, "failed": failed, "checklist": items, "notes": notes,
        "services": _services(inv, e.machine, found),
    }


def _ranges(numbers: list[int]) -> str:
    """``[3, 5, 6, 7]`` as ``03, 05..07``."""
    out, start = [], None
    for n in sorted(numbers) + [None]:
        if start is None:
            start = prev = n
        elif n is not None and n == prev + 1:
            prev = n
        else:
            out.append(f"{start:02d}" if start == prev else f"{start:02d}..{prev:02d}")
            start = prev = n
    return ", ".join(out)


def _sheet_model(inv: Inventory, sheet: str, envs: list[dict], numbers: dict) -> dict:
    """The sheet's number space: a row per numbered machine (the station first), a column per
    environment; each cell taken (with its UID, ports and state) or free."""
    sheet_no = inv.sheets[sheet].resolved_number
    state = {(e["machine"], e["env"]): e for e in envs}
    used_test = any(e["env"] == "test" for e in envs)
    rows = [("station", 0, {"prod"} | ({"test"} if used_test else set()))]
    unnumbered = []
    for m in inv.machines.values():
        if m.sheet != sheet:
            continue
        number = numbers.get(m.name, m.number)
        if number is None:
            unnumbered.append(m.name)
        else:
            rows.append((m.name, number, set(m.environments)))
    rows.sort(key=lambda row: row[1])
    out_rows = []
    for name, number, environments in rows:
        cells = []
        for env, env_no in ENVIRONMENTS.items():
            uid = sheet_no * 10000 + number * 100 + env_no * 10
            e = state.get((name, env))
            taken = env in environments
            cells.append({"env": env, "env_no": env_no, "uid": uid, "ports": [uid, uid + 9],
                          "taken": taken, "station": name == "station" and taken,
                          "state": e["state"] if e else ("station" if name == "station" and taken
                                                         else "taken" if taken else "free"),
                          "selected": e is not None})
        out_rows.append({"machine": name, "number": number, "cells": cells})
    taken_numbers = [n for _, n, _ in rows]
    free = [n for n in range(1, MACHINE_NUMBERS) if n not in taken_numbers]
    return {"name": sheet, "number": sheet_no, "rows": out_rows,
            "environments": [{"name": k, "number": v} for k, v in ENVIRONMENTS.items()],
            "used": _ranges(taken_numbers), "free": _ranges(free), "free_count": len(free),
            "unnumbered": unnumbered, "first_uid": sheet_no * 10000,
            "last_port": sheet_no * 10000 + 9999}


def build(inv: Inventory, envs: list[Env], results: GroupResult, *, now: float | None = None
          ) -> dict:
    """The report as data: hosts (each with its machine-environments, their numbers, services
    and checklist, and its forwards), sheets (their number space), and the run's summary."""
    hosts: dict[str, dict] = {}
    for host, r in results.items():
        sheets_here = [s.name for s in inv.sheets.values() if inv.nas[s.nas].host == host]
        hosts[host] = {"host": host, "recap": recap_line(r), "reachable": not r.unreachable,
                       "error": r.error, "envs": [], "forwards": [], "sheets": sheets_here,
                       "role": "nas" if sheets_here else "machine"}
        for s in r.steps:
            if s.step == "status.forwards":
                hosts[host]["forwards"] = s.data.get("forwards", [])
    numbers = {}
    for e in envs:
        host = inv.machine(e.machine).host
        hosts.setdefault(host, {"host": host, "recap": "", "reachable": True, "error": "",
                                "envs": [], "forwards": [], "sheets": [], "role": "machine"})
        hosts[host]["envs"].append(_env_model(inv, e, results.get(host)))
        if e.smep is not None:
            numbers[e.machine] = e.smep.machine_no
    all_envs = [x for h in hosts.values() for x in h["envs"]]
    sheets = list(dict.fromkeys(inv.sheet_of(e.machine).name for e in envs))
    checked = sum(1 for e in all_envs if e["checklist"])
    return {
        "title": results.title or "site.report",
        "generated": when(now if now is not None else time.time()),
        "inventory": inv.path,
        "exit_code": results.exit_code(),
        "summary": {"hosts": len(hosts), "envs": len(all_envs), "checked": checked,
                    "failed_envs": sum(1 for e in all_envs if e["state"] == "failed"),
                    "failed_items": sum(e["failed"] for e in all_envs),
                    "unreachable": sorted(h for h, r in results.items() if r.unreachable)},
        "hosts": list(hosts.values()),
        "sheets": [_sheet_model(inv, s, [e for e in all_envs if e["sheet"] == s], numbers)
                   for s in sheets],
    }


def html(report: dict) -> str:
    """The report as one HTML page: inline CSS and SVG, no script, nothing fetched; every
    value escaped."""
    return render(TEMPLATE, {"r": report, "cell": 12}, autoescape=True)


def envs_of(sel: site_plan.Selection, found: dict) -> list[Env]:
    """The selected machine-environments with their numbers (None where none were found)."""
    return [Env(m, e, found[(m, e)].smep if (m, e) in found else None) for m, e in sel.envs]
