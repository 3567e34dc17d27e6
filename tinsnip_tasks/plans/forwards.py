"""``service.forward``'s arguments, checked against the inventory before any host is contacted,
and the forward they ask for: a standard port of the machine host to one of the
machine-environment's own ten ports, tagged with its owner (``machine-env:service``)."""
from __future__ import annotations

import re

from ..core.inventory import Inventory
from ..core.smep import Smep, validate_name
from ..errors import InputError
from ..ops.forward import Forward
from .catalog import check_service


def owner(smep: Smep, service: str) -> str:
    """The tag of a forward: ``machine-env:service``."""
    return f"{smep.user}:{service}"


def positive(option: str, value) -> int:
    """A whole number > 0 given on the command line, or an error naming the option."""
    if not re.fullmatch(r"[0-9]{1,9}", str(value)) or int(value) == 0:
        raise InputError(f"{option} {value!r} is not a whole number above 0")
    return int(value)


def forward_port(port, to: str, *, remove: bool) -> int:
    """``--port`` as a number 1..65535, and a ``--to`` unless removing."""
    port = positive("--port", port)
    if port > 65535:
        raise InputError(f"--port {port} is not a port number 1..65535")
    if not remove and not to:
        raise InputError("say where the port goes: --to PORTNAME or --to INDEX (0..9)")
    return port


def _port_index(inv: Inventory, machine: str, service: str, to: str) -> int:
    """The TIN_PORT index ``--to`` names: an index 0..9, or a port name of ``service``."""
    svc = inv.machine(machine).services.get(service)
    ports = svc.ports if svc else {}
    if re.fullmatch(r"[0-9]", str(to)):
        return int(to)
    if to in ports:
        return ports[to]
    raise InputError(f"--to {to!r} is neither a TIN_PORT index 0..9 nor a port name of {service} "
                     f"({', '.join(ports) or 'no port names in the inventory'})")


def service_with_port(inv: Inventory, machine: str, name: str) -> str:
    """The one service of ``machine`` with a port called ``name``."""
    found = [s for s, svc in inv.machine(machine).services.items() if name in svc.ports]
    if len(found) != 1:
        raise InputError(f"{'no' if not found else 'more than one'} service of {machine} has a port "
                         f"named {name!r}; say which with --service")
    return found[0]


def check_forward(inv: Inventory, machine: str, env: str, port, to: str, service: str, *,
                  remove: bool) -> tuple[int, str]:
    """Everything about a ``service.forward`` that the inventory decides, before any host is
    contacted: the port, the service (given, or the one with the ``--to`` port name), the
    target, and a listening port that is neither the host's SSH port nor in a SMEP range of the
    host (:meth:`Inventory.port_owner`). Returns (port, service)."""
    inv.check_env(machine, env)
    port = forward_port(port, to, remove=remove)
    service = service or service_with_port(inv, machine, to)
    validate_name("service", service)
    if remove:  # a forward of a service no longer in the inventory can still be removed
        return port, service
    check_service(inv, machine, service)
    _port_index(inv, machine, service, to)
    why = inv.port_owner(machine, port)
    if why:
        raise InputError(f"--port {port} of {inv.machine(machine).host} is {why}; forward a "
                         "standard port (80, 443, 389...)")
    return port, service


def forward_to(inv: Inventory, smep: Smep, service: str, port: int, to: str, *,
               remove: bool) -> Forward:
    """The forward ``service.forward`` asks for (checked by :func:`check_forward`): to one of
    the environment's own ten ports, never to a port given as a number."""
    if remove:
        return Forward(port, None, owner(smep, service))
    return Forward(port, smep.ports[_port_index(inv, smep.machine, service, to)],
                   owner(smep, service))
