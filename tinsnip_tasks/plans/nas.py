"""The NAS side: the machine-environment's folder tree, its NFS export, the station."""
from __future__ import annotations

import ipaddress

from ..core.render import render
from ..ops.resources import Absent, Directory, Edited, drop_lines, field_is, set_line
from . import Target, step
from .registry import station_registry

SUBDIRS = ("state", "data", "config", "service")
EXPORT_OPTIONS = "rw,sync,all_squash,anonuid={uid},anongid={uid},no_subtree_check"
STATION_OPTIONS = "ro,sync,all_squash,anonuid={uid},anongid={uid},no_subtree_check"


def export_line(path: str, clients: list[str], options: str) -> str:
    return render("nas/exports.j2", {"path": path, "clients": clients, "options": options}).rstrip("\n")


@step("nas.tree")
def tree(t: Target) -> list[Directory]:
    """``{volume}/{sheet}/{machine}/{env}`` and its four folders, owned UID:UID."""
    smep, export_dir = t.smep, t.me.export_dir
    dirs = [Directory(export_dir, smep.uid, smep.uid, 0o750)]
    dirs += [Directory(f"{export_dir}/{d}", smep.uid, smep.uid, 0o750) for d in SUBDIRS]
    return dirs


@step("nas.export")
def export(t: Target) -> list[Edited]:
    """One line in /etc/exports for this export, then ``exportfs -ra``; if the NAS refuses the
    new file the old one is put back, so the exports that worked keep working."""
    smep, export_dir, client = t.smep, t.me.export_dir, t.me.client
    line = export_line(export_dir, [client], EXPORT_OPTIONS.format(uid=smep.uid))
    return [Edited("/etc/exports", set_line(field_is(0, export_dir), line),
                   f"export {export_dir} to {client}", after=("exportfs -ra",), rollback=True,
                   applied=True)]


@step("nas.station")
def station(t: Target) -> list:
    """The sheet's station (machine 00) in ``env``: its folder, its machine registry (seeded with
    the built-in numbers when it does not exist; entries already there are kept), and one
    read-only export to every machine host of the sheet."""
    smep = t.smep
    st = t.inv.station(smep.sheet, smep.env)
    station_dir, registry_path, clients = st.folder, st.registry, st.clients
    line = export_line(station_dir, clients, STATION_OPTIONS.format(uid=smep.uid))
    return [
        Directory(station_dir, smep.uid, smep.uid, 0o755),
        Directory(f"{station_dir}/config", smep.uid, smep.uid, 0o755),
        station_registry(registry_path),
        Edited("/etc/exports", set_line(field_is(0, station_dir), line),
               f"read-only export {station_dir} to {', '.join(clients)}",
               after=("exportfs -ra",), rollback=True, applied=True),
    ]


#: nas.setup: a machine-environment's tree, then its export.
SETUP = (tree, export)


@step("nas.remove")
def removed(t: Target) -> list:
    """No export line for the machine-environment (``exportfs -ra``, the old file back if the NAS
    refuses), then no folder: its data is deleted."""
    export_dir = t.me.export_dir
    return [Edited("/etc/exports", drop_lines(field_is(0, export_dir)),
                   f"no export of {export_dir}", after=("exportfs -ra",), rollback=True,
                   applied=True),
            Absent(export_dir)]


#: Prints the NAS's /etc/exports (nothing when it has none).
EXPORTS_COMMAND = "cat /etc/exports 2>/dev/null || true"


def _client_matches(spec: str, client: str) -> bool:
    """Whether the client field ``spec`` of an exports line (``host``, ``*``, ``10.0.0.0/24``)
    covers ``client``."""
    if spec in ("*", client):
        return True
    if "/" in spec:
        try:
            return ipaddress.ip_address(client) in ipaddress.ip_network(spec, strict=False)
        except ValueError:
            return False
    return False


def exported_to(exports: str, path: str, client: str) -> bool:
    """Whether the /etc/exports text ``exports`` exports ``path`` to ``client``."""
    for line in exports.splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0].strip('"') == path and any(
                _client_matches(f.split("(", 1)[0], client) for f in fields[1:]):
            return True
    return False
