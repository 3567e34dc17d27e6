"""The Invoke collections of the product, composed into one namespace for `inv` and `fab`."""
from invoke import Collection

from .. import config
from ..cli import with_task_help


def namespace() -> Collection:
    """nas, machine, service, xdg, smep, site and secrets, and ``init``, with the ``tinsnip``
    settings' defaults."""
    from . import init, machine, nas, secrets, service, site, smep, xdg

    ns = Collection(nas.ns, machine.ns, service.ns, xdg.ns, smep.ns, site.ns, secrets.ns,
                    init.init)
    ns.configure(config.defaults())
    return with_task_help(ns)
