"""A machine host: its user, NFS mount, XDG links, rootless Docker and machine.env.

``machine.setup`` runs the steps in the seed's order; each is also a task of its own.
"""
from invoke import Collection, task

from ..cli import program_name
from ..config import default_env
from ..plans import build
from ..errors import InputError
from ..plans import machine as plan
from ..plans import nas as nas_plan
from ..plans import status as checks
from ..run import Run
from . import _args

STEP = "machine.export"


def converge(c, title, machine, env, steps, *, dry, json, verbose, assign=False,
             exported=False):
    """Run ``steps`` (step functions) for one machine-environment on its machine host; with
    ``exported``, only once the NAS exports the machine-environment to that host."""
    with Run(c, dry=dry, title=f"{title} {machine} {env}", json=json, verbose=verbose) as run:
        t = run.target(machine, env, assign=assign, steps=steps)
        h = run.machine_host(machine)
        if exported:
            check_exported(run, h, machine, env, program_name(c))
        h.converge([build(fn, t) for fn in steps])


def check_exported(run, h, machine, env, program) -> None:
    """Fail ``h`` (the machine host) before it changes anything when the NAS's /etc/exports
    does not export the machine-environment to it, naming nas.setup; in a dry run the plan is
    still shown, under a failed item."""
    nas = run.nas_host(machine)
    if nas.conn is None or nas.failed or h.failed:
        return  # not reachable (said already) or failed (said already)
    path, client = run.inv.export_dir(machine, env), run.inv.export_client(machine)
    with nas.guard(STEP):
        out = nas.execute(nas_plan.EXPORTS_COMMAND, step=STEP, show="cat /etc/exports").stdout
        if nas_plan.exported_to(out, path, client):
            nas.note(STEP, "ok", f"{path} is exported to {client}", label=f"{machine}-{env}")
            return
        problem = (f"the NAS ({nas.name}) does not export {path} to {client} yet: run "
                   f"`{program} nas.setup --machine {machine} --env {env}` first")
        if run.dry:
            h.note(STEP, "failed", problem, label=f"{machine}-{env}")
        else:
            h.fail(STEP, InputError(problem))


@task(help=_args.COMMON)
def setup(c, machine, env="", dry=False, json=False, verbose=False):
    """Set up a machine-environment: user, mount, XDG links, rootless Docker, machine.env."""
    env = default_env(c, env)
    converge(c, "machine.setup", machine, env, plan.SETUP, dry=dry, json=json, verbose=verbose,
             assign=True, exported=True)


@task(help=_args.COMMON)
def user(c, machine, env="", dry=False, json=False, verbose=False):
    """Create the machine user and group (UID = GID = SMEP UID) with a subordinate ID range."""
    env = default_env(c, env)
    converge(c, "machine.user", machine, env, (plan.user,), dry=dry, json=json, verbose=verbose)


@task(help=_args.COMMON)
def mount(c, machine, env="", dry=False, json=False, verbose=False):
    """Mount the NAS export behind the gate /var/lib/tinsnip/{machine}-{env} (fstab line, nosuid,
    nodev), /mnt/{machine}-{env} a link to it; converts a host set up before the gate."""
    env = default_env(c, env)
    converge(c, "machine.mount", machine, env, (plan.mount,), dry=dry, json=json, verbose=verbose,
             exported=True)


@task(help=_args.COMMON)
def docker(c, machine, env="", dry=False, json=False, verbose=False):
    """Run a rootless Docker daemon for the machine user (user unit with systemd, else
    detached), with the inventory's ``docker:`` settings in its daemon.json."""
    env = default_env(c, env)
    converge(c, "machine.docker", machine, env, (plan.docker_config, plan.docker), dry=dry,
             json=json,
             verbose=verbose)


@task(name="env", help=_args.COMMON)
def env_(c, machine, env="", dry=False, json=False, verbose=False):
    """Write machine.env (TIN_* numbers, DOCKER_HOST, XDG paths) onto the mount."""
    env = default_env(c, env)
    converge(c, "machine.env", machine, env, (plan.machine_env,), dry=dry, json=json,
             verbose=verbose)


@task(help={"machine": _args.MACHINE, "env": _args.ENV, **_args.OUTPUT})
def status(c, machine, env="", json=False, verbose=False):
    """Check the seed's Testing Checklist on a machine-environment; exit 1 if an item fails."""
    env = default_env(c, env)
    with Run(c, title=f"machine.status {machine} {env}", json=json, verbose=verbose) as run:
        t = run.target(machine, env)
        checks.check(run.machine_host(machine), [t], program_name(c))


@task(help=_args.COMMON)
def teardown(c, machine, env="", dry=False, json=False, verbose=False):
    """Take a machine-environment off its host: containers, daemon, forwards, mount, user.

    Its NAS folder and export stay (``nas.remove --purge`` deletes those), so a later
    machine.setup finds the data again."""
    env = default_env(c, env)
    converge(c, "machine.teardown", machine, env, plan.TEARDOWN, dry=dry, json=json,
             verbose=verbose)


ns = Collection("machine", setup, user, mount, docker, env_, status, teardown)
