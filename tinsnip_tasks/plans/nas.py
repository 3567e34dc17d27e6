"""The NAS side: the machine-environment's folder tree, its NFS export, the station."""
from __future__ import annotations

from ..core.render import render
from ..core.smep import Smep
from ..ops.resources import Absent, Directory, Edited, drop_lines, field_is, set_line
from .registry import station_registry

SUBDIRS = ("state", "data", "config", "service")
EXPORT_OPTIONS = "rw,sync,all_squash,anonuid={uid},anongid={uid},no_subtree_check"
STATION_OPTIONS = "ro,sync,all_squash,anonuid={uid},anongid={uid},no_subtree_check"


def export_line(path: str, clients: list[str], options: str) -> str:
    return render("nas/exports.j2", {"path": path, "clients": clients, "options": options}).rstrip("\n")


def tree(smep: Smep, export_dir: str, *, host: str) -> list[Directory]:
    """``{volume}/{sheet}/{machine}/{env}`` and its four folders, owned UID:UID."""
    dirs = [Directory(export_dir, smep.uid, smep.uid, 0o750, host=host)]
    dirs += [Directory(f"{export_dir}/{d}", smep.uid, smep.uid, 0o750, host=host) for d in SUBDIRS]
    return dirs


def export(smep: Smep, export_dir: str, client: str, *, host: str) -> Edited:
    """One line in /etc/exports for this export, then ``exportfs -ra``; if the NAS refuses the
    new file the old one is put back, so the exports that worked keep working."""
    line = export_line(export_dir, [client], EXPORT_OPTIONS.format(uid=smep.uid))
    return Edited("/etc/exports", set_line(field_is(0, export_dir), line),
                  f"export {export_dir} to {client}", after=("exportfs -ra",), rollback=True,
                  host=host)


def station(smep: Smep, station_dir: str, registry_path: str, clients: list[str], *,
            host: str) -> list:
    """The sheet's station (machine 00) in ``env``: its folder, its machine registry (seeded with
    the built-in numbers when it does not exist; entries already there are kept), and one
    read-only export to every machine host of the sheet."""
    line = export_line(station_dir, clients, STATION_OPTIONS.format(uid=smep.uid))
    return [
        Directory(station_dir, smep.uid, smep.uid, 0o755, host=host),
        Directory(f"{station_dir}/config", smep.uid, smep.uid, 0o755, host=host),
        station_registry(registry_path, host=host),
        Edited("/etc/exports", set_line(field_is(0, station_dir), line),
               f"read-only export {station_dir} to {', '.join(clients)}",
               after=("exportfs -ra",), rollback=True, host=host),
    ]


def removed(export_dir: str, *, host: str) -> list:
    """No export line for ``export_dir`` (``exportfs -ra``, the old file back if the NAS
    refuses), then no folder: the machine-environment's data is deleted."""
    return [Edited("/etc/exports", drop_lines(field_is(0, export_dir)),
                   f"no export of {export_dir}", after=("exportfs -ra",), rollback=True,
                   host=host),
            Absent(export_dir, host=host)]
