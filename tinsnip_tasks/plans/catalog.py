"""A service as the inventory gives it, from the catalog (``templates/services/NAME``) or its own
folder: what its ``service.yaml`` says (:class:`CatalogEntry`, read once per loaded inventory)
and what a deploy writes for it (:class:`Rendered`: its compose file, its .env, its build
context; the images it tracks). Pure: no host is contacted."""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ..core import context, envfile
from ..core import images as img
from ..core.inventory import Inventory
from ..core.render import TEMPLATE_DIR, render
from ..core.smep import Smep
from ..errors import InputError, TemplateError
from ..ops import health
from . import Target
from .secrets import load_secrets, public_keys, secret_lines


@dataclass(frozen=True)
class CatalogEntry:
    """What ``service.yaml`` says (a catalog service, or a service folder's own file)."""

    name: str
    image: str
    image_archive: str | None
    ports: tuple
    secrets: tuple
    folder: Path | None = None  # the service's own folder; None for a catalog service
    wait: int | None = None  # seconds a deploy waits for it to be healthy (``wait:``)


def _entry(name: str, meta_path: Path, folder: Path | None) -> CatalogEntry:
    try:
        if folder is not None:
            text = context.read_text(folder, meta_path.name) \
                if context.exists(folder, meta_path.name) else ""
        else:
            text = meta_path.read_text() if meta_path.is_file() else ""
        meta = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as e:
        raise TemplateError(f"{meta_path} is not valid YAML: {e}") from None
    if not isinstance(meta, dict):
        raise TemplateError(f"{meta_path} must be a mapping (image, image_archive, ports, secrets)")
    if folder is None and "image" not in meta:
        raise TemplateError(f"{meta_path} has no image")
    try:
        wait = health.parse_wait(meta.get("wait"), f"{meta_path}: wait:")
    except InputError as e:
        raise TemplateError(str(e)) from None
    return CatalogEntry(name, meta.get("image", ""), meta.get("image_archive"),
                        tuple(meta.get("ports") or ()), tuple(meta.get("secrets") or ()), folder,
                        wait)


def catalog_entry(name: str, root: Path | None = None) -> CatalogEntry:
    path = (root or TEMPLATE_DIR) / "services" / name / "service.yaml"
    if not path.is_file():
        raise TemplateError(f"catalog service {name!r} has no {path}")
    return _entry(name, path, None)


#: The entries read so far, per loaded inventory (one run): ``id(inventory)`` -> {(machine,
#: service): entry}; an inventory's entries go with it.
_ENTRIES: dict[int, dict] = {}


def service_entry(inv: Inventory, machine: str, service: str) -> CatalogEntry:
    """The service as the inventory gives it: from its own folder, else from the catalog. Its
    ``service.yaml`` is read once per loaded inventory: the checks before a run, the steps and
    the health gate all get that one entry."""
    key = id(inv)
    if key not in _ENTRIES:
        _ENTRIES[key] = {}
        weakref.finalize(inv, _ENTRIES.pop, key, None)
    entries = _ENTRIES[key]
    if (machine, service) not in entries:
        entries[(machine, service)] = _read_entry(inv, machine, service)
    return entries[(machine, service)]


def _read_entry(inv: Inventory, machine: str, service: str) -> CatalogEntry:
    folder = inv.machine(machine).services[service].path
    if folder is None:
        return catalog_entry(service)
    context.context_files(Path(folder))  # a link, FIFO, socket or device is refused, first
    return _entry(service, Path(folder) / "service.yaml", Path(folder))


def check_service(inv: Inventory, machine_name: str, service: str) -> None:
    """Raise unless the inventory lists ``service`` under the machine."""
    machine = inv.machine(machine_name)
    if service not in machine.services:
        raise InputError(f"machine {machine_name} does not run {service!r} in {inv.path}; it "
                         f"runs: {', '.join(machine.services) or 'nothing'} (add it under "
                         f"machines: {machine_name}: services)")


def check_secrets(inv: Inventory, machine: str, env: str, service: str) -> None:
    """Everything about a service's secrets that can be checked before any host is contacted."""
    load_secrets(inv, machine, env, service_entry(inv, machine, service))


def service_dir(smep: Smep, service: str) -> str:
    return f"{smep.mount_point}/service/{service}"


@dataclass(frozen=True)
class Rendered:
    """What a deploy writes for a service: its compose file, its .env and, for a service from
    its own folder, the build context (files, digest) uploaded with it."""

    compose: str
    env: str
    folder: Path | None = None
    context_files: tuple = ()
    context_digest: str = ""
    build: bool = False
    public: tuple = ()  # the keys of .env whose values hold no secret (shown in a diff)
    compose_secret: bool = False  # the compose file holds a secret value


def port_lines(smep: Smep, ports: dict) -> str:
    """``TIN_PORT_<NAME>=<port>`` for each port name the inventory maps, so a service's own
    ``service.env`` can say ``WEB_PORT=${TIN_PORT_WEB}``."""
    return "".join(f"TIN_PORT_{name.upper().replace('-', '_')}={smep.ports[index]}\n"
                   for name, index in sorted(ports.items()))


def _builds(compose: str, where: str) -> bool:
    try:
        data = yaml.safe_load(compose) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{where} is not valid YAML: {e}") from None
    services = data.get("services") if isinstance(data, dict) else None
    return isinstance(services, dict) and any(
        isinstance(v, dict) and "build" in v for v in services.values())


def _render_folder(entry: CatalogEntry, smep: Smep, ctx: dict) -> Rendered:
    folder = entry.folder
    names = context.context_files(folder)  # refuses links, FIFOs, sockets, devices
    if context.exists(folder, "docker-compose.yml.j2"):
        compose = render("docker-compose.yml.j2", ctx, root=folder, folder=True)
    else:
        compose = context.read_text(folder, "docker-compose.yml")
    if context.exists(folder, "service.env.j2"):
        own = render("service.env.j2", ctx, root=folder, folder=True)
    elif context.exists(folder, "service.env"):
        own = context.read_text(folder, "service.env")
    else:
        own = ""
    env = (f"# {entry.name} for {smep.label}, written by tinsnip from {folder}\n"
           + port_lines(smep, ctx["ports"]) + own
           + ("" if own.endswith("\n") or not own else "\n")
           + secret_lines(ctx["secrets"]))
    envfile.check_text(env, str(folder / "service.env"))
    return Rendered(compose, env, folder, tuple(names), context.digest(folder, names),
                    _builds(compose, str(folder / "docker-compose.yml")),
                    public_keys(env, ctx["secrets"]))


def render_service(inv: Inventory, smep: Smep, service: str) -> Rendered:
    """The compose file and the .env of ``service`` for this machine-environment."""
    check_service(inv, smep.machine, service)
    machine = inv.machine(smep.machine)
    entry = service_entry(inv, smep.machine, service)
    ports = machine.services[service].ports
    missing = [p for p in entry.ports if p not in ports]
    if missing:
        raise InputError(f"{inv.path}: machines.{smep.machine}.services.{service} must map the "
                         f"port names {', '.join(missing)} to TIN_PORT indexes 0..9")
    ctx = {"smep": smep, "ports": ports, "image": entry.image,
           "secrets": load_secrets(inv, smep.machine, smep.env, entry)}
    if entry.folder is not None:
        out = _render_folder(entry, smep, ctx)
    else:
        base = f"services/{service}"
        env = render(f"{base}/service.env.j2", ctx)
        env += ("" if env.endswith("\n") or not env else "\n") + secret_lines(ctx["secrets"])
        out = Rendered(render(f"{base}/docker-compose.yml.j2", ctx),
                       envfile.check_text(env, f"{base}/service.env.j2"),
                       public=public_keys(env, ctx["secrets"]))
    return replace(out, compose_secret=any(v and v in out.compose
                                           for v in ctx["secrets"].values()))


def tracked_images(t: Target) -> tuple:
    """The images a deploy of the service tracks (core/images.py): what it pulls, and the
    bases of what it builds."""
    where = str(t.rendered.folder / "docker-compose.yml") if t.rendered.folder else \
        f"services/{t.service}/docker-compose.yml.j2"
    return img.tracked(t.rendered.compose, t.rendered.folder, where)
