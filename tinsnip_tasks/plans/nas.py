"""The NAS side: the machine-environment's folder tree, its NFS export, the station registry."""
from __future__ import annotations

from ..core import registry as reg
from ..core.render import render
from ..core.smep import Smep
from ..ops.base import q
from ..ops.resources import Absent, Directory, Edited, drop_lines, field_is, set_line

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


def read_registry_command(path: str) -> str:
    return f"cat {q(path)} 2>/dev/null || echo @@missing"


def parse_registry_output(out: str, path: str) -> dict | None:
    """None when the NAS has no registry file (the built-in defaults then apply)."""
    if out.strip() == "@@missing":
        return None
    return reg.parse_registry(out, source=path)


def assign_command(path: str, name: str) -> str:
    """Give ``name`` the lowest free number 04..99 in the registry at ``path`` under a lock, so
    two setups at once never get the same number. A registry that does not exist yet starts
    with the built-in defaults. Prints the registry afterwards."""
    seed = reg.format_registry({k: v for k, v in reg.DEFAULT_MACHINES.items() if k != reg.STATION})
    p, n = q(path), q(name)
    return (
        "set -e\n"
        f"mkdir -p \"$(dirname {p})\"\n"
        f"exec 9>>{q(path + '.lock')}\n"
        "flock -w 30 9\n"
        f"[ -f {p} ] || printf %s {q(seed)} > {p}\n"
        f"if ! grep -q \"^\"{n}\"=\" {p}; then\n"
        "  for i in $(seq 4 99); do\n"
        "    nn=$(printf %02d \"$i\")\n"
        f"    if ! grep -q \"=$nn\\$\" {p}; then echo {n}=\"$nn\" >> {p}; break; fi\n"
        "  done\n"
        f"  grep -q \"^\"{n}\"=\" {p} || {{ echo 'no free machine number 04..99 in {path}' >&2; exit 1; }}\n"
        "fi\n"
        f"cat {p}"
    )


def station(smep: Smep, station_dir: str, registry_path: str, clients: list[str], *,
            host: str) -> list:
    """The sheet's station (machine 00) in ``env``: its folder, its machine registry (seeded with
    the built-in numbers when it does not exist; entries already there are kept), and one
    read-only export to every machine host of the sheet."""
    seed = reg.format_registry({k: v for k, v in reg.DEFAULT_MACHINES.items() if k != reg.STATION})
    line = export_line(station_dir, clients, STATION_OPTIONS.format(uid=smep.uid))
    return [
        Directory(station_dir, smep.uid, smep.uid, 0o755, host=host),
        Directory(f"{station_dir}/config", smep.uid, smep.uid, 0o755, host=host),
        Edited(registry_path, lambda text: text if text.strip() else seed,
               "machine registry", host=host),
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
