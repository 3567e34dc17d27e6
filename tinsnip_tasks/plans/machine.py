"""The machine side: user, NFS mount, XDG links, rootless Docker, machine.env."""
from __future__ import annotations

from ..core.render import render
from ..core.smep import Smep
from ..ops.docker import DockerStopped, NoContainers, RootlessDocker, docker_host
from ..ops.forward import Forward
from ..ops.resources import (Directory, Edited, File, Mounted, Symlink, Unmounted, User, UserAbsent,
                             drop_lines, field_is, set_line)

SUBID_COUNT = 65536
MOUNT_OPTIONS = "rw,hard,vers=3,_netdev"
XDG = (("state", ".local/state"), ("data", ".local/share"), ("config", ".config"))


def home(smep: Smep) -> str:
    return f"/home/{smep.user}"


def subid_start(uid: int) -> int:
    """Each machine UID gets its own 65536 subordinate IDs, so ranges never overlap."""
    return uid * SUBID_COUNT


def user(smep: Smep, *, host: str) -> list:
    return [User(smep.user, smep.uid, home(smep), subid_start(smep.uid), SUBID_COUNT, host=host)]


def fstab_line(server: str, export_dir: str, mount_point: str) -> str:
    return render("machine/fstab.j2", {"server": server, "export": export_dir,
                                       "mount_point": mount_point,
                                       "options": MOUNT_OPTIONS}).rstrip("\n")


def mount(smep: Smep, server: str, export_dir: str, *, host: str) -> list:
    source = f"{server}:{export_dir}"
    return [
        Directory(smep.mount_point, host=host),
        Edited("/etc/fstab", set_line(field_is(1, smep.mount_point),
                                      fstab_line(server, export_dir, smep.mount_point)),
               f"fstab line for {smep.mount_point}", host=host),
        Mounted(smep.mount_point, source, host=host),
    ]


def xdg_links(smep: Smep, *, host: str) -> list:
    """``@machine`` under each XDG base folder's sheet folder, pointing into the mount."""
    h, uid = home(smep), smep.uid
    out = []
    for name, base in XDG:
        parts = base.split("/")
        for i in range(1, len(parts) + 1):
            d = Directory(f"{h}/{'/'.join(parts[:i])}", uid, uid, None, host=host)
            if d not in out:
                out.append(d)
        out.append(Directory(f"{h}/{base}/{smep.sheet}", uid, uid, 0o755, host=host))
    for name, base in XDG:
        out.append(Symlink(f"{h}/{base}/{smep.sheet}/@{smep.machine}",
                           f"{smep.mount_point}/{name}", uid, host=host))
    return out


def docker(smep: Smep, *, host: str) -> list:
    return [RootlessDocker(smep.user, smep.uid, home(smep), host=host)]


def machine_env_text(smep: Smep) -> str:
    return render("machine/machine.env.j2", {"smep": smep, "home": home(smep),
                                             "docker_host": docker_host(smep.uid)})


def machine_env(smep: Smep, *, host: str) -> list:
    """machine.env on the NFS mount; files there belong to the export's anonymous UID."""
    d = f"{smep.mount_point}/.machine"
    return [Directory(d, None, None, 0o750, host=host),
            File(f"{d}/machine.env", machine_env_text(smep).encode(), None, None, 0o640,
                 secret=True, host=host)]


def teardown(smep: Smep, *, host: str) -> list[tuple[str, list]]:
    """(step, resources) in order: containers, daemon, forwards, mount, fstab line, user and
    home (with its XDG links). Nothing on the NAS is touched: its data stays."""
    return [
        ("machine.down", [NoContainers(smep.user, smep.uid, host=host)]),
        ("machine.docker", [DockerStopped(smep.user, smep.uid, host=host)]),
        ("machine.forwards", [Forward(None, None, smep.user, host=host)]),
        ("machine.mount", [Unmounted(smep.mount_point, host=host),
                           Edited("/etc/fstab", drop_lines(field_is(1, smep.mount_point)),
                                  f"no fstab line for {smep.mount_point}", host=host)]),
        ("machine.user", [UserAbsent(smep.user, home(smep), host=host)]),
    ]
