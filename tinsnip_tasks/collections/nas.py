"""The NAS: a folder tree per machine-environment and its NFS export.

Runs on the sheet's NAS from the inventory (or the host given with ``fab -H``).
"""
from invoke import Collection, task

from .. import resolve
from ..errors import InputError
from ..plans import Target, build
from ..plans import nas as plan
from ..run import Run
from . import _args


@task(help=_args.COMMON)
def setup(c, machine, env="", dry=False, json=False, verbose=False):
    """Create the machine-environment's folders on the NAS and export them to its host."""
    with resolve.machine_env(c, "nas.setup", machine, env, nas_task=True, dry=dry, json=json,
                             verbose=verbose) as (run, me):
        t = resolve.numbers(run, me, assign=True)
        run.host(me.nas_host).converge([build(fn, t) for fn in plan.SETUP])


@task(help={"sheet": _args.SHEET, "env": "station environment: prod (default) or test",
            "dry": _args.DRY, **_args.OUTPUT})
def station(c, sheet, env="prod", dry=False, json=False, verbose=False):
    """Set up the sheet's station: folder, machine registry, read-only export to its machines."""
    with Run(c, dry=dry, title=f"nas.station {sheet} {env}", json=json, verbose=verbose) as run:
        st = run.inv.station(sheet, env)
        nas = run.host(run.override or st.nas_host)
        nas.converge([build(plan.station, Target(run.inv, st.smep))])


@task(help={**_args.COMMON, "purge": "really delete the folder and its data (required)"})
def remove(c, machine, env="", purge=False, dry=False, json=False, verbose=False):
    """Delete a machine-environment's NAS folder (all its data) and its export; needs --purge."""
    with resolve.machine_env(c, "nas.remove", machine, env, nas_task=True, dry=dry, json=json,
                             verbose=verbose) as (run, me):
        if not purge:
            raise InputError(f"nas.remove deletes every file of {me.name} on the NAS; run it "
                             "again with --purge to mean it (machine.teardown and "
                             "service.remove keep the data)")
        t = resolve.numbers(run, me)
        run.host(me.nas_host).converge([build(plan.removed, t)])


ns = Collection("nas", setup, station, remove)
