"""Catalog services: render a service's compose file and .env, then start it as the machine user."""
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from ..core.inventory import load_inventory
from ..core.render import catalog, render
from ..errors import TinsnipError
from ..plans import service as plan
from ..plans import build
from ..run import Run
from . import _args

HELP = {**_args.COMMON, "service": _args.SERVICE}


@task(help=HELP)
def deploy(c, machine, env, service, dry=False, json=False, verbose=False):
    """Upload a service's compose file and .env and start it with `docker compose up -d`."""
    with Run(c, dry=dry, title=f"service.deploy {machine} {env} {service}", json=json,
             verbose=verbose) as run:
        plan.check_service(run.inv, machine, service)  # bad input fails here, first
        t = run.target(machine, env, service=service)
        steps = [build(fn, t) for fn in plan.DEPLOY]
        run.machine_host(machine).converge(steps)


@task(help={"machine": _args.MACHINE, "env": _args.ENV, "service": _args.SERVICE,
            "output": "file to write (default: print it)"})
def makefile(c, machine, env, service, output=""):
    """Write the service Makefile (setup, deploy, setup-xdg-links, status targets)."""
    try:
        inv = load_inventory(catalog=catalog())
        inv.check_env(machine, env)
        plan.check_service(inv, machine, service)
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
