"""Catalog services: render a service's compose file and .env, then start it as the machine user."""
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from .. import config
from ..core.inventory import load_inventory
from ..core.render import catalog, render
from ..errors import InputError, TinsnipError
from ..plans import service as plan
from ..run import Run
from . import _args

HELP = {**_args.COMMON, "service": _args.SERVICE}


def deploy_steps(run: Run, smep, machine: str, service: str, rendered: tuple[str, str]):
    h = run.machine_host(machine)
    h.converge("service.files", plan.files(smep, service, rendered, host=h.name))
    image = plan.image(smep, service, host=h.name)
    if image:
        h.converge("service.image", image)
    h.converge("service.up", plan.up(smep, service, rendered, host=h.name))


@task(help=HELP)
def deploy(c, machine, env, service, dry=False):
    """Upload a service's compose file and .env and start it with `docker compose up -d`."""
    with Run(c, dry=dry, title=f"service.deploy {machine} {env} {service}") as run:
        smep = run.smep(machine, env)
        rendered = plan.render_service(run.inv, smep, service)  # bad input fails here, first
        deploy_steps(run, smep, machine, service, rendered)


@task(help={"machine": _args.MACHINE, "env": _args.ENV, "service": _args.SERVICE,
            "output": "file to write (default: print it)"})
def makefile(c, machine, env, service, output=""):
    """Write the service Makefile (setup, deploy, setup-xdg-links, status targets)."""
    try:
        inv = load_inventory(config.read(c).inventory, catalog=catalog())
        inv.check_env(machine, env)
        if service not in inv.machine(machine).services:
            raise InputError(f"machine {machine} does not run {service!r} in {inv.path}")
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=2)
    text = render("Makefile.j2", {"sheet": inv.sheet_of(machine).name, "machine": machine,
                                  "env": env, "service": service})
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}")
    else:
        print(text, end="")


ns = Collection("service", deploy, makefile)
