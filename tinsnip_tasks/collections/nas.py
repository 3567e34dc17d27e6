"""The NAS: a folder tree per machine-environment and its NFS export.

Runs on the sheet's NAS from the inventory (or the host given with ``fab -H``).
"""
from invoke import Collection, task
from invoke.exceptions import Exit

from ..config import default_env
from ..plans import Target, build
from ..plans import nas as plan
from ..run import Run
from . import _args


@task(help=_args.COMMON)
def setup(c, machine, env="", dry=False, json=False, verbose=False):
    """Create the machine-environment's folders on the NAS and export them to its host."""
    env = default_env(c, env)
    with Run(c, dry=dry, title=f"nas.setup {machine} {env}", json=json, verbose=verbose) as run:
        t = Target(run.inv, run.smep(machine, env, assign=True))
        nas = run.nas_host(machine, allow_override=True)
        nas.converge([build(fn, t) for fn in plan.SETUP])


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
    env = default_env(c, env)
    if not purge:
        raise Exit(f"error: nas.remove deletes every file of {machine}-{env} on the NAS; run it "
                   "again with --purge to mean it (machine.teardown and service.remove keep "
                   "the data)", code=2)
    with Run(c, dry=dry, title=f"nas.remove {machine} {env}", json=json, verbose=verbose) as run:
        t = Target(run.inv, run.smep(machine, env))
        nas = run.nas_host(machine, allow_override=True)
        nas.converge([build(plan.removed, t)])


ns = Collection("nas", setup, station, remove)
