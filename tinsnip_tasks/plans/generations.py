"""What a deploy keeps of a running service and how it checks the new one: the stamp of the
files it starts from, the generations kept before a change, the health gate after ``compose up``
(a service that is not healthy is brought back to its previous generation) and
``service.rollback``."""
from __future__ import annotations

import hashlib

from ..core.smep import Smep
from ..errors import HealthError
from ..ops import health
from ..ops.base import Host
from . import Target
from .catalog import Rendered, service_dir, service_entry, tracked_images
from .machine import machine_env_text


def stamp(smep: Smep, rendered: Rendered) -> str:
    """Digest of every file the service is started from, as the ``service.files`` step writes
    them, and of its build context."""
    digest = hashlib.sha256()
    for part in (rendered.compose, rendered.env, machine_env_text(smep), rendered.context_digest):
        digest.update(hashlib.sha256(part.encode()).digest())
    return digest.hexdigest()


def wait_seconds(t: Target) -> int:
    """How long a deploy waits for the service to be healthy: ``--wait``, else the inventory's
    ``wait:`` for the service, else its ``service.yaml``'s, else :data:`health.DEFAULT_WAIT`."""
    svc = t.me.machine.services.get(t.service)
    for value in (t.wait, svc.wait if svc else None,
                  service_entry(t.inv, t.smep.machine, t.service).wait if svc else None):
        if value is not None:
            return value
    return health.DEFAULT_WAIT


def gate(t: Target) -> health.Gate:
    """The health gate of the service: its containers, and each port the inventory maps for it.
    (What it reports, container logs included, is printed through the run's mask of secrets.)"""
    smep, service = t.smep, t.service
    svc = t.me.machine.services[service]
    return health.Gate(smep.user, smep.uid, smep.mount_point, service_dir(smep, service), service,
                       tuple((name, smep.ports[i]) for name, i in sorted(svc.ports.items())),
                       wait_seconds(t))


def generations(smep: Smep, service: str) -> str:
    return health.generations_dir(smep.mount_point, service)


def verify(h: Host, failure, target: Target) -> None:
    """After ``compose up``: wait for the service to be healthy, else roll it back (or stop it)
    and fail (:func:`health.after_up`)."""
    t = target
    health.after_up(h, failure, gate=gate(t), stamp=stamp(t.smep, t.rendered), step="service.up",
                    gens_dir=generations(t.smep, t.service), images=tracked_images(t))


def rollback(h: Host, t: Target) -> None:
    """``service.rollback``: the service back to its newest kept generation (which is dropped,
    so a second call goes one further back); ok when no generation is kept. Then the health
    gate: a generation that is not healthy fails the step (nothing further is rolled back)."""
    smep, service = t.smep, t.service
    want = health.Rollback(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                           generations(smep, service), service)
    label = f"{t.scope} {service}"
    if h.conn is None:
        h.note("service.rollback", "unchecked", "host not reachable; would " + want.describe(),
               label=label)
        return
    versions = want.parse(h.read([want], step="service.rollback")[0])
    gens = versions.gens
    if not gens:
        h.note("service.rollback", "ok", f"no older generation of {service} is kept in "
                                         f"{generations(smep, service)}", label=label)
        return
    g = gens[-1]
    what = (f"{service} back to generation {g.number} (saved {g.saved or '?'}, stamp "
            f"{g.stamp[:12] or '?'}); {len(gens) - 1} older kept")
    cmds = want.commands(versions)
    if h.dry:
        h.note("service.rollback", "would change", what, commands=[str(c) for c in cmds],
               label=label)
        return
    for c in cmds:
        h.execute(c.text, step="service.rollback", show=c.show)
    h.result.rolled_back += 1
    check_gate = gate(t)
    if check_gate.wait:
        healthy, state = check_gate.wait_healthy(h, "service.rollback")
        if not healthy:
            raise HealthError(f"{what}, but it is not healthy within {check_gate.wait} s:\n"
                              + check_gate.report(h, "service.rollback", state))
    h.note("service.rollback", "changed", what, commands=[str(c) for c in cmds], label=label)
