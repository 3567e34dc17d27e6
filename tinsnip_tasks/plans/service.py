"""A catalog service on a machine: its files on the mount, its image, its Compose project."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from dotenv import dotenv_values

from ..core.inventory import Inventory
from ..core.render import TEMPLATE_DIR, render
from ..core.smep import Smep
from ..errors import InputError, TemplateError
from ..ops.docker import ComposeUp, DockerImage
from ..ops.resources import Directory, File
from . import Target, step
from .machine import machine_env_text

DATA_FOLDERS = ("data", "state", "config")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    image: str
    image_archive: str | None
    ports: tuple
    secrets: tuple


def catalog_entry(name: str, root: Path | None = None) -> CatalogEntry:
    path = (root or TEMPLATE_DIR) / "services" / name / "service.yaml"
    if not path.is_file():
        raise TemplateError(f"catalog service {name!r} has no {path}")
    meta = yaml.safe_load(path.read_text()) or {}
    return CatalogEntry(name, meta["image"], meta.get("image_archive"),
                        tuple(meta.get("ports", ())), tuple(meta.get("secrets", ())))


def secrets_path(inv: Inventory, smep: Smep) -> Path:
    return Path(inv.path).resolve().parent / "secrets" / f"{smep.machine}-{smep.env}.env"


def load_secrets(inv: Inventory, smep: Smep, entry: CatalogEntry) -> dict:
    """The service's secrets from ``secrets/{machine}-{env}.env`` beside the inventory."""
    if not entry.secrets:
        return {}
    path = secrets_path(inv, smep)
    values = dotenv_values(path) if path.is_file() else {}
    missing = [k for k in entry.secrets if not values.get(k)]
    if missing:
        raise InputError(f"service {entry.name} needs {', '.join(missing)} in {path} "
                         f"(KEY=value lines; keep the file private, mode 0600)")
    return {k: values[k] for k in entry.secrets}


def service_dir(smep: Smep, service: str) -> str:
    return f"{smep.mount_point}/service/{service}"


def check_service(inv: Inventory, machine_name: str, service: str) -> None:
    """Raise unless the inventory lists ``service`` under the machine."""
    machine = inv.machine(machine_name)
    if service not in machine.services:
        raise InputError(f"machine {machine_name} does not run {service!r} in {inv.path}; it "
                         f"runs: {', '.join(machine.services) or 'nothing'} (add it under "
                         f"machines: {machine_name}: services)")


def render_service(inv: Inventory, smep: Smep, service: str) -> tuple[str, str]:
    """The compose file and the .env of ``service`` for this machine-environment."""
    check_service(inv, smep.machine, service)
    machine = inv.machine(smep.machine)
    entry = catalog_entry(service)
    ports = machine.services[service].ports
    missing = [p for p in entry.ports if p not in ports]
    if missing:
        raise InputError(f"{inv.path}: machines.{smep.machine}.services.{service} must map the "
                         f"port names {', '.join(missing)} to TIN_PORT indexes 0..9")
    ctx = {"smep": smep, "ports": ports, "image": entry.image,
           "secrets": load_secrets(inv, smep, entry)}
    base = f"services/{service}"
    return render(f"{base}/docker-compose.yml.j2", ctx), render(f"{base}/service.env.j2", ctx)


@step("service.files", needs=("machine.mount",))
def files(t: Target) -> list:
    """The service's folders on the mount and its files (rendered by :func:`render_service`)."""
    smep, service = t.smep, t.service
    compose, env = t.rendered
    d = service_dir(smep, service)
    out = [Directory(d, None, None, 0o750)]
    out += [Directory(f"{smep.mount_point}/{f}/{service}", None, None, 0o750)
            for f in DATA_FOLDERS]
    out += [File(f"{d}/docker-compose.yml", compose.encode(), None, None, 0o640),
            File(f"{d}/.env", env.encode(), None, None, 0o600, secret=True)]
    return out


@step("service.image", needs=("machine.docker",))
def image(t: Target) -> list:
    """The service's image in the user's daemon, loaded from the host's archive if missing."""
    smep, service = t.smep, t.service
    entry = catalog_entry(service)
    if not entry.image_archive:
        return []
    return [DockerImage(smep.user, smep.uid, entry.image, entry.image_archive)]


def stamp(smep: Smep, rendered: tuple[str, str]) -> str:
    """Digest of every file the service is started from, as :func:`files` writes them."""
    digest = hashlib.sha256()
    for part in (*rendered, machine_env_text(smep)):
        digest.update(hashlib.sha256(part.encode()).digest())
    return digest.hexdigest()


@step("service.up", needs=("machine.mount", "machine.docker", "machine.env", "service.files",
                          "service.image"))
def up(t: Target) -> list:
    """The Compose project runs with its current files (the seed's ``up -d`` when not)."""
    smep, service = t.smep, t.service
    return [ComposeUp(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                      service, stamp(smep, t.rendered))]


#: service.deploy: files, image, compose project.
DEPLOY = (files, image, up)
