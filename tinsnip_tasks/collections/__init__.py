"""The Invoke collections of the product, composed into one namespace for `inv` and `fab`."""
from invoke import Collection

from .. import config


def namespace() -> Collection:
    """nas, machine, service, xdg, smep, site and secrets, with the ``tinsnip`` settings'
    defaults."""
    from . import machine, nas, secrets, service, site, smep, xdg

    ns = Collection(nas.ns, machine.ns, service.ns, xdg.ns, smep.ns, site.ns, secrets.ns)
    ns.configure(config.defaults())
    return ns
