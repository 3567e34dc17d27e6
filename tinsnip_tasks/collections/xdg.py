"""XDG links: ``@machine`` under the machine user's XDG state, data and config folders."""
from invoke import Collection, task

from ..plans import machine as plan
from ..run import Run
from . import _args


def link_steps(run: Run, smep, machine: str):
    h = run.machine_host(machine)
    h.converge("xdg.link", plan.xdg_links(smep, host=h.name))


@task(help=_args.COMMON)
def link(c, machine, env, dry=False):
    """Link ~/.local/state|share and ~/.config/{sheet}/@{machine} to the NFS mount."""
    with Run(c, dry=dry, title=f"xdg.link {machine} {env}") as run:
        link_steps(run, run.smep(machine, env), machine)


ns = Collection("xdg", link)
