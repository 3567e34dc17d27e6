"""A machine host: its user, NFS mount, XDG links, rootless Docker and machine.env.

``machine.setup`` runs the steps in the seed's order; each is also a task of its own.
"""
from invoke import Collection, task

from ..config import default_env
from ..plans import build
from ..plans import machine as plan
from ..plans import status as checks
from ..run import Run
from . import _args


def converge(c, title, machine, env, steps, *, dry, json, verbose, assign=False):
    """Run ``steps`` (step functions) for one machine-environment on its machine host."""
    with Run(c, dry=dry, title=f"{title} {machine} {env}", json=json, verbose=verbose) as run:
        t = run.target(machine, env, assign=assign, steps=steps)
        run.machine_host(machine).converge([build(fn, t) for fn in steps])


@task(help=_args.COMMON)
def setup(c, machine, env="", dry=False, json=False, verbose=False):
    """Set up a machine-environment: user, mount, XDG links, rootless Docker, machine.env."""
    env = default_env(c, env)
    converge(c, "machine.setup", machine, env, plan.SETUP, dry=dry, json=json, verbose=verbose,
             assign=True)


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
    converge(c, "machine.mount", machine, env, (plan.mount,), dry=dry, json=json, verbose=verbose)


@task(help=_args.COMMON)
def docker(c, machine, env="", dry=False, json=False, verbose=False):
    """Run a rootless Docker daemon for the machine user (user unit with systemd, else detached)."""
    env = default_env(c, env)
    converge(c, "machine.docker", machine, env, (plan.docker,), dry=dry, json=json,
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
        checks.check(run.machine_host(machine), [t])


@task(help=_args.COMMON)
def teardown(c, machine, env="", dry=False, json=False, verbose=False):
    """Take a machine-environment off its host: containers, daemon, forwards, mount, user.

    Its NAS folder and export stay (``nas.remove --purge`` deletes those), so a later
    machine.setup finds the data again."""
    env = default_env(c, env)
    converge(c, "machine.teardown", machine, env, plan.TEARDOWN, dry=dry, json=json,
             verbose=verbose)


ns = Collection("machine", setup, user, mount, docker, env_, status, teardown)
