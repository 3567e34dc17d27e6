"""The Invoke collections of the product, composed into one namespace for `inv` and `fab`."""
from invoke import Collection


def namespace() -> Collection:
    from . import machine, nas, service, smep, xdg

    return Collection(nas.ns, machine.ns, service.ns, xdg.ns, smep.ns)
