"""XDG links: ``@machine`` under the machine user's XDG state, data and config folders."""
from invoke import Collection, task

from ..plans import machine as plan
from . import _args
from .machine import converge


@task(help=_args.COMMON)
def link(c, machine, env="", dry=False, json=False, verbose=False):
    """Link ~/.local/state|share and ~/.config/{sheet}/@{machine} to the NFS mount."""
    converge(c, "xdg.link", machine, env, (plan.xdg_links,), dry=dry, json=json, verbose=verbose)


ns = Collection("xdg", link)
