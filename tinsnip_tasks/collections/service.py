"""Services: from the catalog or their own folder, checked before start, forwarded, removed.

``deploy`` writes the service's compose file and .env (and uploads its folder as the build
context), runs the preflight (``check``) and starts it as the machine user the seed's way.
"""
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from .. import resolve
from ..core.render import render
from ..core.smep import validate_name
from ..errors import TinsnipError
from ..ops.base import Step
from ..ops.docker import compose_as
from . import _args

# The service plans are imported by the tasks that use them, so that a run of another task
# (machine.setup, say) does not load them.

HELP = {**_args.COMMON, "service": _args.SERVICE}
PULL = ("pull every image of the service (and the base images of what it builds) where the "
        "registry serves a new digest, and start again what uses one")


@task(help={**HELP, "wait": _args.WAIT, "pull": PULL})
def deploy(c, machine, service, env="", wait="", pull=False, dry=False, json=False,
           verbose=False):
    """Upload a service's files (and build context), check them, start it with compose up -d,
    wait for it to be healthy (else bring back the previous generation)."""
    from ..ops import health
    from ..plans import catalog as catalog_plan
    from ..plans import service as plan

    with resolve.machine_env(c, "service.deploy", machine, env, detail=service + (
            " --pull" if pull else ""), dry=dry, json=json, verbose=verbose) as (run, me):
        seconds = health.parse_wait(wait)  # bad input fails here, first
        catalog_plan.check_service(run.inv, machine, service)
        catalog_plan.check_secrets(run.inv, *me.key, service)
        steps = plan.deploy_steps(pull)
        run.host(me.host).converge(resolve.steps(run, me, steps, service=service, wait=seconds))


@task(help={**HELP, "service": "service to roll back (one the inventory lists for the machine)"})
def rollback(c, machine, service, env="", dry=False, json=False, verbose=False):
    """Bring a service back to its previous generation (kept by each deploy); again: one more."""
    from ..plans import catalog as catalog_plan
    from ..plans import generations

    with resolve.machine_env(c, "service.rollback", machine, env, detail=service, dry=dry,
                             json=json, verbose=verbose) as (run, me):
        catalog_plan.check_service(run.inv, machine, service)  # bad input fails here, first
        catalog_plan.check_secrets(run.inv, *me.key, service)
        t = resolve.target(run, me, service=service)
        h = run.host(me.host)
        if not h.failed:
            with h.guard("service.rollback"):
                generations.rollback(h, t)


@task(help={"machine": _args.MACHINE, "env": _args.ENV, "service": _args.SERVICE,
            **_args.OUTPUT})
def check(c, machine, service, env="", json=False, verbose=False):
    """Run the preflight on the deployed files: docker compose config and tinsnip's rules."""
    from ..plans import catalog as catalog_plan
    from ..plans import preflight

    with resolve.machine_env(c, "service.check", machine, env, detail=service, json=json,
                             verbose=verbose) as (run, me):
        catalog_plan.check_service(run.inv, machine, service)
        t = resolve.target(run, me, service=service)
        h = run.host(me.host)
        if not h.failed:
            with h.guard("service.check"):
                preflight.check(h, t)


@task(help={**_args.COMMON, "port": "standard port on the machine host, e.g. 389 (not the "
                                    "host's SSH port, nor a port of a SMEP range there)",
            "to": "port name of a service (from the inventory) or TIN_PORT index 0..9 of this "
                  "environment",
            "service": "the service that owns the forward (default: the one with the --to name)",
            "remove": "remove the forward of this port instead"})
def forward(c, machine, port, env="", to="", service="", remove=False, dry=False, json=False,
            verbose=False):
    """Forward a standard port on the machine host to one of the environment's ten ports.

    Checked before any host is contacted: the service and --to in the inventory, --port neither
    the SSH port tinsnip uses nor in a SMEP range of the host; on the host: not a port its sshd
    listens on."""
    from ..plans import forwards

    with resolve.machine_env(c, "service.forward", machine, env, detail=str(port), dry=dry,
                             json=json, verbose=verbose) as (run, me):
        port, service = forwards.check_forward(run.inv, *me.key, port, to, service,
                                               remove=remove)  # bad input fails here, first
        t = resolve.target(run, me)
        want = forwards.forward_to(run.inv, t.smep, service, port, to, remove=remove)
        run.host(me.host).converge([Step("service.forward", (want,), t.scope, t.scope)])


@task(help=HELP)
def remove(c, machine, service, env="", dry=False, json=False, verbose=False):
    """Stop a service (compose down) and remove its files and forwards; its NAS data stays."""
    from ..plans import service as plan

    with resolve.machine_env(c, "service.remove", machine, env, detail=service, dry=dry,
                             json=json, verbose=verbose) as (run, me):
        validate_name("service", service)  # one no longer in the inventory can still be removed
        run.host(me.host).converge(resolve.steps(run, me, plan.REMOVE, service=service))


@task(help={**HELP, "tail": "number of lines from the end of each container's log (default 100)",
            "follow": "keep printing new lines until Ctrl-C"})
def logs(c, machine, service, env="", tail="100", follow=False, dry=False, json=False,
         verbose=False):
    """Print the service's compose logs, read as the machine user (only logs on stdout)."""
    from ..plans import catalog as catalog_plan
    from ..plans import forwards

    # stdout carries the logs alone; title and recap go to stderr
    with resolve.machine_env(c, "service.logs", machine, env, detail=service, data_on_stdout=True,
                             dry=dry, json=json, verbose=verbose) as (run, me):
        validate_name("service", service)
        tail = forwards.positive("--tail", tail)
        t = resolve.target(run, me, service=service)
        smep, h = t.smep, run.host(me.host)
        action = f"logs --no-color --tail {int(tail)}" + (" --follow" if follow else "")
        command = compose_as(smep.user, smep.mount_point, catalog_plan.service_dir(smep, service),
                             action)
        if dry or h.conn is None or h.failed:
            h.note("service.logs", "skipped", f"{service}: dry run" if dry and not h.failed
                   else service, commands=[command])
            return
        with h.guard("service.logs"):
            if follow:
                stream(h, command, step="service.logs")
                h.note("service.logs", "ok", f"{service}: followed until Ctrl-C")
                return
            out = h.execute(command, step="service.logs", show=f"compose logs of {service}")
            print(out.stdout, end="", flush=True)
            h.note("service.logs", "ok", f"{service}: {len(out.stdout.splitlines())} line(s)")


def stream(h, command: str, *, step: str) -> None:
    """Run ``command`` on host ``h`` as :meth:`Host.run` does, its output going straight to
    this program's stdout and stderr, until it ends or Ctrl-C (which ends it: the channel is
    closed, and the host's sshd hangs up on the command)."""
    import signal
    import sys

    from ..errors import RemoteError
    from ..ops.base import ScriptStream, remote_script

    stopped = []

    def stop(signum, frame):  # Ctrl-C: hang up, so the command and Invoke's readers end
        stopped.append(signum)
        h.conn.close()

    h.commands += 1
    previous = signal.signal(signal.SIGINT, stop)
    try:
        result = h.conn.run("sudo -n sh -s" if h.sudo else "sh -s", hide=False, warn=True,
                            in_stream=ScriptStream(remote_script(command)),
                            out_stream=sys.stdout, err_stream=sys.stderr)
    except Exception:
        if stopped:
            return
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        h.result.commands = h.commands
    if not stopped and not result.ok:
        raise RemoteError(h.name, step, command, result.exited, "")


@task(help={"machine": _args.MACHINE, "env": _args.ENV, "service": _args.SERVICE,
            "output": "file to write (default: print it)"})
def makefile(c, machine, service, env="", output=""):
    """Write the service Makefile (setup, deploy, setup-xdg-links, status targets)."""
    from ..plans import catalog as catalog_plan

    try:
        inv, me = resolve.offline(c, machine, env)
        catalog_plan.check_service(inv, machine, service)
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=2)
    text = render("Makefile.j2", {"sheet": me.sheet.name, "machine": machine, "env": me.env,
                                  "service": service})
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}")
    else:
        print(text, end="")


ns = Collection("service", deploy, check, forward, remove, logs, makefile, rollback)
