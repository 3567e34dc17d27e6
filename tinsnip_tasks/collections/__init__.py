"""The Invoke collections of the product, composed into one namespace for `inv` and `fab`."""
from invoke import Collection

#: tinsnip's settings in Invoke's configuration (``tinsnip:`` in a config file, or env vars
#: such as ``INVOKE_TINSNIP_VERBOSE=1`` for ``inv``).
DEFAULTS = {
    "json": False,  # the recap as JSON on stdout
    "verbose": False,  # commands and their output
    "recap_file": "",  # also write the JSON recap to this file
}


def namespace() -> Collection:
    from . import machine, nas, service, site, smep, xdg

    ns = Collection(nas.ns, machine.ns, service.ns, xdg.ns, smep.ns, site.ns)
    ns.configure({"tinsnip": dict(DEFAULTS)})
    return ns
