"""The whole homelab at once: every sheet's station, the NAS trees and exports, then every
machine host in parallel (one connection each), each host's steps in the seed's order.

``--limit`` selects parts of the inventory the way Ansible's does (see README). A host that
fails or cannot be reached does not stop the others; every host gets its recap line and the
exit code says whether any failed.
"""
from __future__ import annotations

from json import dumps
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from .. import resolve
from ..cli import program_name
from ..errors import TinsnipError
from ..plans import Target
from ..output import write_atomic
from ..plans import status as checks
from ..results import EXIT_INPUT
from ..run import Run, parallel
from . import _args

LIMIT = ("only these parts of the inventory: comma-separated host, machine, machine:env or "
         "service names, globs (gazette:*), !PATTERN to exclude, &PATTERN to intersect")
HELP = {"limit": LIMIT, "dry": _args.DRY, **_args.OUTPUT}


def check_services(inv, sel, mes, *, dry: bool = False) -> dict:
    """Render every selected service once with provisional numbers, so a missing secret, a
    broken template or a bad image reference is refused before any host is touched. In a dry
    run the services that cannot be rendered are returned instead (``{(machine, env, service):
    error}``) and taken out of ``sel``, so everything else is still previewed."""
    from ..plans import service as service_plan

    refused = {}
    for me in mes:
        smep = me.provisional()
        for service in sel.services[me.key]:
            try:
                service_plan.tracked_images(Target(inv, smep, service))  # renders, checks images
            except TinsnipError as e:
                if not dry:
                    raise
                refused[(*me.key, service)] = e
    for machine, env, service in refused:
        sel.services[(machine, env)].remove(service)
    return refused


def nas_hosts_of(mes) -> list[str]:
    """The NAS hosts of ``mes``, each once, in their order."""
    return list(dict.fromkeys(me.nas_host for me in mes))


def connect(run: Run, mes) -> list[str]:
    """Connect every NAS and machine host of ``mes`` at once (the NASes first in the recap);
    returns the NAS hosts."""
    nas_hosts = nas_hosts_of(mes)
    run.connect(list(dict.fromkeys(nas_hosts + [me.host for me in mes])))
    return nas_hosts


def nas_first(run: Run, mes, nas_work):
    """Connect the NASes of ``mes`` (first in the recap), then run ``nas_work()`` on them
    while the machine hosts are being connected, all at once; returns what ``nas_work``
    returns once every host is connected. The NAS's work waits for no machine host's key
    exchange (on a site of many hosts, these take a while)."""
    nas_hosts = nas_hosts_of(mes)
    run.connect(nas_hosts)
    machine_hosts = [h for h in dict.fromkeys(me.host for me in mes) if h not in nas_hosts]
    result, _ = parallel(lambda fn: fn(), [nas_work, lambda: run.connect(machine_hosts)])
    return result


def skip_without(run: Run, mes, found: dict, reason: str):
    """Machine hosts whose machine-environments have no numbers (their NAS failed) are noted."""
    for me in mes:
        if me.key not in found:
            run.hosts[me.host].note("site", "skipped", f"{me.name}: {reason}")


@task(help={**HELP, "wait": _args.WAIT,
            "pull": "pull every image of the selected services where the registry serves a new "
                    "digest, and start again what uses one"})
def up(c, limit="", wait="", pull=False, dry=False, json=False, verbose=False):
    """Converge the inventory: NAS work first (while the machine hosts are being connected),
    then every machine host at once."""
    from ..ops.health import parse_wait
    from ..plans import site as plan

    title = "site.up" + (f" --limit {limit}" if limit else "") + (" --pull" if pull else "")
    with Run(c, dry=dry, title=title, json=json, verbose=verbose) as run:
        inv = run.inv
        seconds = parse_wait(wait)
        sel = plan.select(inv, limit)
        mes = resolve.machine_envs(run, sel.envs)  # secrets masked before anything is printed
        refused = check_services(inv, sel, mes, dry=run.dry)

        def nas_work():
            found = resolve.targets(run, mes, assign=True)
            done = plan.Selection([k for k in sel.envs if k in found],
                                  {k: v for k, v in sel.services.items() if k in found})
            for host, steps in plan.nas_steps(inv, done, found).items():
                run.hosts[host].converge(steps)
            return found, done

        found, done = nas_first(run, mes, nas_work)
        by_key = {me.key: me for me in mes}
        for (machine, env, service), error in refused.items():  # what cannot be previewed
            run.hosts[by_key[machine, env].host].note(
                "service.files", "failed", f"cannot preview {service}: {error}",
                label=f"{machine}-{env} {service}")
        skip_without(run, mes, found, "its NAS failed or could not be reached")
        failed_nas = {h for h in nas_hosts_of(mes) if run.hosts[h].failed}
        work = plan.machine_steps(inv, done, found, wait=seconds, pull=pull)
        for me in mes:
            if me.key in found and me.nas_host in failed_nas:
                run.hosts[me.host].note("site", "skipped", f"{me.name}: its NAS failed")
                work[me.host] = [s for s in work.get(me.host, []) if s.scope != me.name]
        parallel(lambda host: run.hosts[host].converge(work[host]), list(work))


def check_all(run: Run, limit: str):
    """The Testing Checklist on every machine-environment ``limit`` selects, every machine host
    at once. Returns the selection and the targets found."""
    from ..plans import site as plan

    sel = plan.select(run.inv, limit)
    mes = resolve.machine_envs(run, sel.envs)
    connect(run, mes)
    found = resolve.targets(run, mes, assign=False)
    skip_without(run, mes, found, "its NAS failed or could not be reached")
    by_host: dict[str, list] = {}
    for me in mes:
        if me.key in found:
            by_host.setdefault(me.host, []).append(found[me.key])
    program = program_name(run.c)
    parallel(lambda host: checks.check(run.hosts[host], by_host[host], program), list(by_host))
    return sel, found


@task(help={"limit": LIMIT, **_args.OUTPUT})
def status(c, limit="", json=False, verbose=False):
    """Run the Testing Checklist on every selected machine-environment at once."""
    title = "site.status" + (f" --limit {limit}" if limit else "")
    with Run(c, title=title, json=json, verbose=verbose) as run:
        check_all(run, limit)


@task(help={"limit": LIMIT, "verbose": _args.VERBOSE,
            "html": "write the report as one self-contained HTML page to this file",
            "json": "write the report's data as JSON to this file"})
def report(c, limit="", html="", json="", verbose=False):
    """Run the checklist everywhere (as site.status) and write the site report (--html, --json)."""
    from ..plans import report as report_plan

    if not (html or json):
        raise Exit("error: say where to write the report: --html FILE and/or --json FILE",
                   code=EXIT_INPUT)
    for path in (html, json):
        if path and not Path(path).resolve().parent.is_dir():
            raise Exit(f"error: {path}: its folder does not exist", code=EXIT_INPUT)
    title = "site.report" + (f" --limit {limit}" if limit else "")
    with Run(c, title=title, verbose=verbose) as run:
        sel, found = check_all(run, limit)
        data = run.output.mask.data(report_plan.build(run.inv, report_plan.envs_of(sel, found),
                                                      run.results))
        for path, text in ((json, lambda: dumps(data, indent=2) + "\n"),
                           (html, lambda: report_plan.html(data))):
            if path:
                write_atomic(Path(path), text().encode(), mode=0o644)
                run.output.info(f"wrote {path}")


ns = Collection("site", up, status, report)
