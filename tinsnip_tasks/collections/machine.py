"""A machine host: its user, NFS mount, XDG links, rootless Docker and machine.env.

``machine.setup`` runs the steps in the seed's order; each is also a task of its own.
"""
from invoke import Collection, task

from ..plans import machine as plan
from ..plans import status as checks
from ..run import Run
from .service import forwards_listed
from . import _args
from .xdg import link_steps


def _step(name, build):
    def run_step(run: Run, smep, machine: str):
        h = run.machine_host(machine)
        h.converge(name, build(run, smep, machine, h.name))
    return run_step


user_step = _step("machine.user", lambda run, s, m, host: plan.user(s, host=host))
mount_step = _step("machine.mount", lambda run, s, m, host: plan.mount(
    s, run.nas_address(m), run.inv.export_dir(m, s.env), host=host))
docker_step = _step("machine.docker", lambda run, s, m, host: plan.docker(s, host=host))
env_step = _step("machine.env", lambda run, s, m, host: plan.machine_env(s, host=host))

SETUP = (user_step, mount_step, link_steps, docker_step, env_step)


def _one(c, machine, env, dry, title, steps, assign=False):
    with Run(c, dry=dry, title=f"{title} {machine} {env}") as run:
        smep = run.smep(machine, env, assign=assign)
        for step in steps:
            step(run, smep, machine)


@task(help=_args.COMMON)
def setup(c, machine, env, dry=False):
    """Set up a machine-environment: user, mount, XDG links, rootless Docker, machine.env."""
    _one(c, machine, env, dry, "machine.setup", SETUP, assign=True)


@task(help=_args.COMMON)
def user(c, machine, env, dry=False):
    """Create the machine user and group (UID = GID = SMEP UID) with a subordinate ID range."""
    _one(c, machine, env, dry, "machine.user", (user_step,))


@task(help=_args.COMMON)
def mount(c, machine, env, dry=False):
    """Add the NAS export to /etc/fstab and mount it at /mnt/{machine}-{env}."""
    _one(c, machine, env, dry, "machine.mount", (mount_step,))


@task(help=_args.COMMON)
def docker(c, machine, env, dry=False):
    """Run a rootless Docker daemon for the machine user (user unit with systemd, else detached)."""
    _one(c, machine, env, dry, "machine.docker", (docker_step,))


@task(name="env", help=_args.COMMON)
def env_(c, machine, env, dry=False):
    """Write machine.env (TIN_* numbers, DOCKER_HOST, XDG paths) onto the mount."""
    _one(c, machine, env, dry, "machine.env", (env_step,))


@task(help={"machine": _args.MACHINE, "env": _args.ENV})
def status(c, machine, env):
    """Check the seed's Testing Checklist on a machine-environment; exit 1 if an item fails."""
    with Run(c, title=f"machine.status {machine} {env}") as run:
        smep = run.smep(machine, env)
        h = run.machine_host(machine)
        facts = checks.parse(h.run(checks.script(smep), step="machine.status").stdout)
        titles = dict(checks.ITEMS)
        for item, passed, detail in checks.evaluate(facts, smep):
            h.note(f"status.{item}", "ok" if passed else "failed", f"{titles[item]}: {detail}")
        rules = [r for r in forwards_listed(h) if r["chain"] == "PREROUTING"]
        h.note("status.forwards", "ok", "standard ports forwarded on this host: " + (", ".join(
            f"{r['port']} -> {r['to']} ({r['owner']})" for r in rules) or "none"))


@task(help=_args.COMMON)
def teardown(c, machine, env, dry=False):
    """Take a machine-environment off its host: containers, daemon, forwards, mount, user.

    Its NAS folder and export stay (``nas.remove --purge`` deletes those), so a later
    machine.setup finds the data again."""
    with Run(c, dry=dry, title=f"machine.teardown {machine} {env}") as run:
        smep = run.smep(machine, env)
        h = run.machine_host(machine)
        for step, resources in plan.teardown(smep, host=h.name):
            h.converge(step, resources)


ns = Collection("machine", setup, user, mount, docker, env_, status, teardown)
