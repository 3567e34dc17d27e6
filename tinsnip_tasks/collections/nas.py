"""The NAS: a folder tree per machine-environment and its NFS export.

Runs on the sheet's NAS from the inventory (or the host given with ``fab -H``).
"""
from invoke import Collection, task
from invoke.exceptions import Exit

from ..plans import nas as plan
from ..run import Run
from . import _args


def setup_steps(run: Run, smep, machine: str, env: str):
    """The NAS tree owned by the machine UID, the export line, ``exportfs -ra``."""
    nas = run.nas_host(machine, allow_override=True)
    export_dir = run.inv.export_dir(machine, env)
    nas.converge("nas.tree", plan.tree(smep, export_dir, host=nas.name))
    nas.converge("nas.export", [plan.export(smep, export_dir, run.export_client(machine),
                                            host=nas.name)])


@task(help=_args.COMMON)
def setup(c, machine, env, dry=False):
    """Create the machine-environment's folders on the NAS and export them to its host."""
    with Run(c, dry=dry, title=f"nas.setup {machine} {env}") as run:
        smep = run.smep(machine, env, assign=True)
        setup_steps(run, smep, machine, env)


@task(help={"sheet": _args.SHEET, "env": "station environment: prod (default) or test",
            "dry": _args.DRY})
def station(c, sheet, env="prod", dry=False):
    """Set up the sheet's station: folder, machine registry, read-only export to its machines."""
    with Run(c, dry=dry, title=f"nas.station {sheet} {env}") as run:
        smep, station_dir, registry_path, clients, nas_target = run.station(sheet, env)
        nas = run.host(run.override or nas_target)
        nas.converge("nas.station", plan.station(smep, station_dir, registry_path, clients,
                                                 host=nas.name))


@task(help={**_args.COMMON, "purge": "really delete the folder and its data (required)"})
def remove(c, machine, env, purge=False, dry=False):
    """Delete a machine-environment's NAS folder (all its data) and its export; needs --purge."""
    if not purge:
        raise Exit(f"error: nas.remove deletes every file of {machine}-{env} on the NAS; run it "
                   "again with --purge to mean it (machine.teardown and service.remove keep "
                   "the data)", code=2)
    with Run(c, dry=dry, title=f"nas.remove {machine} {env}") as run:
        smep = run.smep(machine, env)
        nas = run.nas_host(machine, allow_override=True)
        nas.converge("nas.remove", plan.removed(run.inv.export_dir(machine, env), host=nas.name))


ns = Collection("nas", setup, station, remove)
