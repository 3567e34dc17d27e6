"""The machine side: user, NFS mount, XDG links, rootless Docker, machine.env."""
from __future__ import annotations

from ..core import envfile
from ..core.render import render
from ..core.smep import Smep
from ..core.target import nfs_server
from ..ops.docker import (DaemonConfig, DockerStopped, NoContainers, RootlessDocker, daemon_json,
                          docker_host)
from ..ops.forward import Forward
from ..ops.resources import (Directory, Edited, File, Mounted, Symlink, Unmounted, User, UserAbsent,
                             drop_lines, field_is, set_line)
from . import Target, step

SUBID_COUNT = 65536
MOUNT_OPTIONS = "rw,hard,vers=3,_netdev"
XDG = (("state", ".local/state"), ("data", ".local/share"), ("config", ".config"))


def home(smep: Smep) -> str:
    return f"/home/{smep.user}"


def subid_start(uid: int) -> int:
    """Each machine UID gets its own 65536 subordinate IDs, so ranges never overlap."""
    return uid * SUBID_COUNT


@step("machine.user")
def user(t: Target) -> list:
    """The machine user and group, UID = GID = SMEP UID, with its subordinate ID range."""
    smep = t.smep
    return [User(smep.user, smep.uid, home(smep), subid_start(smep.uid), SUBID_COUNT)]


def fstab_line(server: str, export_dir: str, mount_point: str) -> str:
    return render("machine/fstab.j2", {"server": server, "export": export_dir,
                                       "mount_point": mount_point,
                                       "options": MOUNT_OPTIONS}).rstrip("\n")


@step("machine.mount")
def mount(t: Target) -> list:
    """The export's fstab line and the mount at ``/mnt/{machine}-{env}``."""
    smep, server = t.smep, nfs_server(t.inv.nas_address(t.smep.machine))
    export_dir = t.inv.export_dir(smep.machine, smep.env)
    source = f"{server}:{export_dir}"
    return [
        Directory(smep.mount_point),
        Edited("/etc/fstab", set_line(field_is(1, smep.mount_point),
                                      fstab_line(server, export_dir, smep.mount_point)),
               f"fstab line for {smep.mount_point}"),
        Mounted(smep.mount_point, source),
    ]


@step("xdg.link", needs=("machine.user",))
def xdg_links(t: Target) -> list:
    """``@machine`` under each XDG base folder's sheet folder, pointing into the mount; made by
    the machine user in its own home."""
    smep = t.smep
    h, uid = home(smep), smep.uid
    out = []
    for name, base in XDG:
        parts = base.split("/")
        for i in range(1, len(parts) + 1):
            d = Directory(f"{h}/{'/'.join(parts[:i])}", owner=uid)
            if d not in out:
                out.append(d)
        out.append(Directory(f"{h}/{base}/{smep.sheet}", mode=0o755, owner=uid))
    for name, base in XDG:
        out.append(Symlink(f"{h}/{base}/{smep.sheet}/@{smep.machine}",
                           f"{smep.mount_point}/{name}", owner=uid))
    return out


@step("machine.docker-config", needs=("machine.user", "xdg.link"))
def docker_config(t: Target) -> list:
    """The rootless daemon's ``daemon.json`` from the inventory's ``docker:`` settings (registry
    mirrors, insecure registries), written by the machine user; a running daemon is stopped
    when it changes, and ``machine.docker`` starts it again."""
    smep = t.smep
    config = t.inv.docker(smep.machine).daemon_config()
    return [DaemonConfig(smep.user, smep.uid, home(smep), daemon_json(config))]


@step("machine.docker", needs=("machine.user", "machine.mount", "machine.docker-config"))
def docker(t: Target) -> list:
    """A rootless Docker daemon for the machine user (its unit follows the host's script). It
    starts after the mount: rootlesskit gives the daemon a copy of the mounts there are when it
    starts, and containers bind paths on the mount."""
    smep = t.smep
    return [RootlessDocker(smep.user, smep.uid, home(smep), mount_point=smep.mount_point)]


def machine_env_text(smep: Smep) -> str:
    """machine.env, which bash sources and compose reads: literal words only (core/envfile.py)."""
    text = render("machine/machine.env.j2", {"smep": smep, "home": home(smep),
                                             "docker_host": docker_host(smep.uid)})
    return envfile.check_text(text, "machine/machine.env.j2")


@step("machine.env", needs=("machine.mount",))
def machine_env(t: Target) -> list:
    """machine.env on the NFS mount, written by the machine user: on the mount every local user
    acts as the export's anonymous UID (all_squash), so root never writes there."""
    smep = t.smep
    d = f"{smep.mount_point}/.machine"
    return [Directory(d, mode=0o750, owner=smep.uid),
            File(f"{d}/machine.env", machine_env_text(smep).encode(), mode=0o640,
                 owner=smep.uid)]  # numbers and paths, no secret: its diff shows them


#: machine.setup: the seed's order.
SETUP = (user, mount, xdg_links, docker_config, docker, machine_env)


# machine.teardown: containers, daemon, forwards, mount, fstab line, user and home (with its XDG
# links). Nothing on the NAS is touched: its data stays. Each step is read after the one before
# it has run (a daemon stops only once its containers are gone, a user goes once its processes
# are).
@step("machine.down")
def containers_down(t: Target) -> list:
    """No containers of the machine user."""
    return [NoContainers(t.smep.user, t.smep.uid)]


@step("machine.docker", needs=("machine.down",))
def docker_stopped(t: Target) -> list:
    """The machine user's rootless daemon stopped."""
    return [DockerStopped(t.smep.user, t.smep.uid)]


@step("machine.forwards", needs=("machine.docker",))
def forwards_removed(t: Target) -> list:
    """No port forwards owned by the machine-environment."""
    return [Forward(None, None, t.smep.user)]


@step("machine.mount", needs=("machine.forwards",))
def unmounted(t: Target) -> list:
    """The mount gone and its fstab line with it."""
    smep = t.smep
    return [Unmounted(smep.mount_point),
            Edited("/etc/fstab", drop_lines(field_is(1, smep.mount_point)),
                   f"no fstab line for {smep.mount_point}")]


@step("machine.user", needs=("machine.mount",))
def user_removed(t: Target) -> list:
    """No machine user, group or home."""
    return [UserAbsent(t.smep.user, t.smep.uid, home(t.smep))]


TEARDOWN = (containers_down, docker_stopped, forwards_removed, unmounted, user_removed)
