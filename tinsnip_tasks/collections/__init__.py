"""The Invoke collections, composed into one namespace for `inv` and `fab`."""
from invoke import Collection


def namespace() -> Collection:
    from . import demo, lab, machine, nas, service, smep, xdg

    return Collection(nas.ns, machine.ns, service.ns, xdg.ns, smep.ns, lab.ns, demo.demo)
