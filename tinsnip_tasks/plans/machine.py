"""The machine side: user, NFS mount, XDG links, rootless Docker, machine.env."""
from __future__ import annotations

import hashlib
import posixpath

from ..core import envfile
from ..core.render import render
from ..core.smep import Smep
from ..core.target import nfs_server
from ..ops.docker import (DaemonConfig, DockerStopped, NoContainers, RootlessDocker, daemon_json,
                          docker_host)
from ..ops.forward import Forward
from ..ops.gate import (GATE_MODE, GATE_ROOT, SUBID_COUNT, DaemonOffOldMount, GateLink,
                        NowhereMounted, gate_dir, nfs_dir, subid_range, sums_file,
                        with_digest)
from ..ops.resources import (Absent, Directory, Edited, File, Mounted, Symlink, Unmounted, User,
                             UserAbsent, drop_lines, drop_ours, field_is, set_line)
from . import Target, step

# nosuid,nodev: a setuid file or a device node someone leaves on the export means nothing here
MOUNT_OPTIONS = "rw,hard,vers=3,nosuid,nodev,_netdev"
#: a host whose PID 1 is systemd makes its mount units from /etc/fstab: read it again
SYSTEMD_RELOAD = 'if [ "$(cat /proc/1/comm)" = systemd ]; then systemctl daemon-reload; fi'
#: what tinsnip wrote before the gate (the export mounted directly on /mnt/M-E): adopted as its
#: own when a host is converted, even without its marker comment
OLD_MOUNT_OPTIONS = "rw,hard,vers=3,_netdev"
XDG = (("state", ".local/state"), ("data", ".local/share"), ("config", ".config"))
#: NFS 3 locks (a container's SQLite on the mount, say) go through the host's rpc-statd, which
#: systemd would otherwise stop before the mounts at shutdown: unmounting then waits a minute on
#: it, on every shutdown and reboot. Ordered before the mounts, it is stopped after them.
STATD_DROPIN = "/etc/systemd/system/rpc-statd.service.d/tinsnip.conf"
STATD_ORDER = ("# Written by tinsnip (machine.mount): rpc-statd stops after the NFS mounts, so\n"
               "# unmounting one whose files were locked does not wait on it.\n"
               "[Unit]\nBefore=remote-fs-pre.target\n")


def home(smep: Smep) -> str:
    return f"/home/{smep.user}"


def subid_start(uid: int) -> int:
    """Each machine UID gets its own 65536 subordinate IDs, so ranges never overlap."""
    return subid_range(uid)[0]


@step("machine.user")
def user(t: Target) -> list:
    """The machine user and group, UID = GID = SMEP UID, with its subordinate ID range."""
    smep = t.smep
    return [User(smep.user, smep.uid, home(smep), subid_start(smep.uid), SUBID_COUNT)]


def fstab_line(server: str, export_dir: str, mount_point: str,
               options: str = MOUNT_OPTIONS) -> str:
    return render("machine/fstab.j2", {"server": server, "export": export_dir,
                                       "mount_point": mount_point,
                                       "options": options}).rstrip("\n")


def export_source(t: Target) -> tuple[str, str, str]:
    """(NFS server as fstab writes it, export folder, ``server:/folder``)."""
    server, export_dir = nfs_server(t.me.nas_address), t.me.export_dir
    return server, export_dir, f"{server}:{export_dir}"


def recorded(path: str, content: bytes, mount_point: str) -> Edited:
    """The SHA-256 of ``content``, the bytes tinsnip writes to ``path`` on the mount, recorded
    where only root writes (:func:`~tinsnip_tasks.ops.gate.sums_file`): the seed sources
    ``path`` only when it still holds exactly these bytes."""
    return Edited(sums_file(mount_point), with_digest(path, hashlib.sha256(content).hexdigest()),
                  f"SHA-256 of {path}", hidden=True)


def _moved(old: str, new: str, line: str, old_line: str):
    """The fstab edit of the move behind the gate: tinsnip's old line for ``old`` goes, the
    line for ``new`` is set."""
    drop, put = drop_ours(field_is(1, old), also=(old_line,)), set_line(field_is(1, new), line)
    return lambda text: put(drop(text))


@step("machine.mount")
def mount(t: Target) -> list:
    """The export's fstab line and its mount behind the gate, ``/mnt/{machine}-{env}`` a link
    to it, and rpc-statd ordered before the mounts (:data:`STATD_DROPIN`); a host with the export still mounted directly on ``/mnt/{machine}-{env}`` is
    converted (its daemon and containers stopped once, see
    :class:`~tinsnip_tasks.ops.gate.DaemonOffOldMount`)."""
    smep = t.smep
    server, export_dir, source = export_source(t)
    where = nfs_dir(smep.mount_point)
    line = fstab_line(server, export_dir, where)
    old_line = fstab_line(server, export_dir, smep.mount_point, OLD_MOUNT_OPTIONS)
    return [
        Directory(GATE_ROOT, uid=0, gid=0, mode=0o755),
        Directory(gate_dir(smep.mount_point), uid=0, gid=smep.uid, mode=GATE_MODE),
        Directory(where),
        DaemonOffOldMount(smep.user, smep.uid, smep.mount_point),
        Edited("/etc/fstab", _moved(smep.mount_point, where, line, old_line),
               f"fstab line for {where}", after=(SYSTEMD_RELOAD,)),
        Mounted(where, source),
        GateLink(smep.mount_point, where),
        Directory(posixpath.dirname(STATD_DROPIN), uid=0, gid=0, mode=0o755),
        Edited(STATD_DROPIN, lambda _text: STATD_ORDER, "rpc-statd stopped after the NFS mounts",
               after=(SYSTEMD_RELOAD,)),
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
    config = t.me.docker.daemon_config()
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
    """machine.env on the NFS mount, written by the machine user (root never writes on a mount
    the machine user can change). Its SHA-256 is recorded where only root writes: the seed
    sources it only as written."""
    smep = t.smep
    d = f"{smep.mount_point}/.machine"
    text = machine_env_text(smep).encode()
    return [Directory(d, mode=0o750, owner=smep.uid),
            File(f"{d}/machine.env", text, mode=0o640,
                 owner=smep.uid),  # numbers and paths, no secret: its diff shows them
            recorded(f"{d}/machine.env", text, smep.mount_point)]


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
    """The mount gone (behind the gate, and the old one on /mnt/M-E of a host never converted),
    the link, the gate with its digests, and the fstab lines."""
    smep = t.smep
    where = nfs_dir(smep.mount_point)
    return [Unmounted(where), Unmounted(smep.mount_point),
            Edited("/etc/fstab", lambda text: drop_lines(field_is(1, where))(
                drop_lines(field_is(1, smep.mount_point))(text)),
                   f"no fstab line for {smep.mount_point} or {where}", after=(SYSTEMD_RELOAD,)),
            Absent(gate_dir(smep.mount_point))]


@step("machine.unshared", needs=("machine.mount",))
def nowhere_mounted(t: Target) -> list:
    """The export mounted in no mount namespace left on the host."""
    return [NowhereMounted(export_source(t)[2])]


@step("machine.user", needs=("machine.unshared",))
def user_removed(t: Target) -> list:
    """No machine user, group or home."""
    return [UserAbsent(t.smep.user, t.smep.uid, home(t.smep))]


TEARDOWN = (containers_down, docker_stopped, forwards_removed, unmounted, nowhere_mounted,
            user_removed)
