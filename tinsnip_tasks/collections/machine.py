"""A machine host: its user, NFS mount, XDG links, rootless Docker and machine.env.

``machine.setup`` runs the steps in the seed's order; each is also a task of its own.
"""
from invoke import Collection, task

from .. import resolve
from ..cli import program_name
from ..errors import InputError
from ..plans import machine as plan
from ..plans import nas as nas_plan
from ..plans import status as checks
from . import _args

STEP = "machine.export"


def converge(c, task, machine, env, steps, *, assign=False, exported=False, **options):
    """Run ``steps`` (step functions) for one machine-environment on its machine host; with
    ``exported``, only once the NAS exports the machine-environment to that host."""
    with resolve.machine_env(c, task, machine, env, **options) as (run, me):
        exports: list[str] = []  # the NAS's /etc/exports, read beside the machine host's facts
        built = resolve.steps(run, me, steps, assign=assign,
                              then=(lambda nas: exports.extend(read_exports(nas))) if exported
                              else None)
        h = run.host(me.host)
        if exported and exports:
            check_exported(run, h, me, program_name(c), exports[0])
        h.converge(built)


def read_exports(nas) -> list[str]:
    """The NAS's /etc/exports (``[text]``), or ``[]`` when it cannot be read (said already)."""
    if nas.conn is None or nas.failed:
        return []
    with nas.guard(STEP):
        return [nas.execute(nas_plan.EXPORTS_COMMAND, step=STEP, show="cat /etc/exports").stdout]
    return []


def check_exported(run, h, me, program, out: str) -> None:
    """Fail ``h`` (the machine host) before it changes anything when the NAS's /etc/exports
    (``out``) does not export the machine-environment ``me`` to it, naming nas.setup; in a dry
    run the plan is still shown, under a failed item."""
    nas = run.host(me.nas_host)
    if nas.failed or h.failed:
        return  # failed (said already)
    path, client, label = me.export_dir, me.client, me.name
    if nas_plan.exported_to(out, path, client):
        nas.note(STEP, "ok", f"{path} is exported to {client}", label=label)
        return
    problem = (f"the NAS ({nas.name}) does not export {path} to {client} yet: run "
               f"`{program} nas.setup --machine {me.machine.name} --env {me.env}` first")
    if run.dry:
        h.note(STEP, "failed", problem, label=label)
    else:
        h.fail(STEP, InputError(problem))


@task(help=_args.COMMON)
def setup(c, machine, env="", dry=False, json=False, verbose=False):
    """Set up a machine-environment: user, mount, XDG links, rootless Docker, machine.env."""
    converge(c, "machine.setup", machine, env, plan.SETUP, assign=True, exported=True,
             dry=dry, json=json, verbose=verbose)


@task(help=_args.COMMON)
def user(c, machine, env="", dry=False, json=False, verbose=False):
    """Create the machine user and group (UID = GID = SMEP UID) with a subordinate ID range."""
    converge(c, "machine.user", machine, env, (plan.user,), dry=dry, json=json, verbose=verbose)


@task(help=_args.COMMON)
def mount(c, machine, env="", dry=False, json=False, verbose=False):
    """Mount the NAS export behind the gate /var/lib/tinsnip/{machine}-{env} (fstab line, nosuid,
    nodev), /mnt/{machine}-{env} a link to it; converts a host set up before the gate."""
    converge(c, "machine.mount", machine, env, (plan.mount,), exported=True, dry=dry, json=json,
             verbose=verbose)


@task(help=_args.COMMON)
def docker(c, machine, env="", dry=False, json=False, verbose=False):
    """Run a rootless Docker daemon for the machine user (user unit with systemd, else
    detached), with the inventory's ``docker:`` settings in its daemon.json."""
    converge(c, "machine.docker", machine, env, (plan.docker_config, plan.docker), dry=dry,
             json=json, verbose=verbose)


@task(name="env", help=_args.COMMON)
def env_(c, machine, env="", dry=False, json=False, verbose=False):
    """Write machine.env (TIN_* numbers, DOCKER_HOST, XDG paths) onto the mount."""
    converge(c, "machine.env", machine, env, (plan.machine_env,), dry=dry, json=json,
             verbose=verbose)


@task(help={"machine": _args.MACHINE, "env": _args.ENV, **_args.OUTPUT})
def status(c, machine, env="", json=False, verbose=False):
    """Check the seed's Testing Checklist on a machine-environment; exit 1 if an item fails."""
    with resolve.machine_env(c, "machine.status", machine, env, json=json,
                             verbose=verbose) as (run, me):
        checks.check(run.host(me.host), [resolve.target(run, me)], program_name(c))


@task(help=_args.COMMON)
def teardown(c, machine, env="", dry=False, json=False, verbose=False):
    """Take a machine-environment off its host: containers, daemon, forwards, mount, user.

    Its NAS folder and export stay (``nas.remove --purge`` deletes those), so a later
    machine.setup finds the data again."""
    converge(c, "machine.teardown", machine, env, plan.TEARDOWN, dry=dry, json=json,
             verbose=verbose)


ns = Collection("machine", setup, user, mount, docker, env_, status, teardown)
