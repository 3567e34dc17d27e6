"""The lab's systemd hosts: systemd 252 as PID 1 in ``systemd-nspawn``, with a kept disk.

A systemd host is one process tree started (detached) as
``nsenter --net=/run/netns/<slot>-<host> unshare -m sh -c _BOOT``: the script moves itself
into a cgroup of its own (``tinsnip-lab/<slot>-<host>`` in the ``name=systemd`` and unified hierarchies;
without that, nspawn puts its ``payload`` and ``supervisor`` cgroups at the hierarchies'
roots, since this machine's own PID 1 is not systemd), mounts an overlay of the systemd rootfs
below and the host's disk folder above (on this machine's ext4, kept across reboots, removed
by ``lab.down``), copies the host's own files in on its first boot, and becomes
``systemd-nspawn --boot`` in the host's network namespace, where the lab's veth ``eth0``
already is; systemd-networkd inside configures it from the host's own ``.network`` file.

Measured options (see the design notes): ``--register=no --keep-unit`` (no system bus on this
machine), ``--system-call-filter=@keyring`` (runc joins a session keyring), ``/home`` bound
from an ext4 folder so the rootless daemon can use overlay2, ``/etc/hostname`` from the disk.
``--private-network`` beside ``--network-namespace-path`` keeps ``CAP_NET_ADMIN`` (so
systemd-networkd runs and ``network-online.target``, which ``_netdev`` mounts wait for, is
reached) and a writable ``/proc/sys/net`` (rootlesskit's dockerd enables IP forwarding in its
own network namespace); ``/dev/fuse`` is bound in for the lab's FUSE NFS client.
"""

import subprocess
import time
from pathlib import Path

from tinsnip_lab import hosts, settings
from tinsnip_lab.errors import LabError

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_HIERARCHIES = ("systemd", "unified")
CGROUP_PARENT = "tinsnip-lab"

# $1 host, $2 lower layer (systemd rootfs), $3 the host's folder, $4 cgroup path, $5 netns
_BOOT = r"""
set -eu
host=$1 lower=$2 dir=$3 cg=$4 netns=$5
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  [ -d "$h" ] || continue
  mkdir -p "$h/$cg"
  echo $$ > "$h/$cg/cgroup.procs"
done
mount --make-rprivate /
mkdir -p "$dir/disk/upper" "$dir/disk/work" "$dir/disk/home" "$dir/root"
mount -t overlay -o "lowerdir=$lower,upperdir=$dir/disk/upper,workdir=$dir/disk/work" \
    "tslab-$host" "$dir/root"
if [ -d "$dir/seed" ]; then
  cp -a "$dir/seed/." "$dir/root/"
  rm -rf "$dir/seed"
fi
# What nspawn keeps under /run/systemd (propagation folder, image locks) lives and dies
# with this mount namespace instead of staying on this machine after a kill.
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755,size=1m "tslab-$host-nspawn" /run/systemd
exec systemd-nspawn --quiet --boot --register=no --keep-unit \
    --directory="$dir/root" --machine="$host" --hostname="$host" \
    --private-network --network-namespace-path="/run/netns/$netns" \
    --system-call-filter=@keyring --console=read-only \
    --bind="$dir/disk/home:/home" --bind=/dev/fuse \
    --resolv-conf=off --timezone=off --link-journal=no
"""


def cgroup_path(host):
    """Return the cgroup (relative to a hierarchy's root) that ``host``'s nspawn runs in."""
    return f"{CGROUP_PARENT}/{settings.netns_name(host)}"


def network_file(host, match="Name=eth0"):
    """Return the systemd-networkd file that gives ``host`` its lab address on the link
    ``match`` selects (``eth0``, the lab's veth, by default)."""
    return (f"# Written by the tinsnip lab.\n[Match]\n{match}\n\n[Network]\n"
            f"Address={settings.LAB_HOSTS[host]}/{settings.PREFIX_LEN}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")


def prepare(host, match="Name=eth0"):
    """A fresh, empty disk for ``host`` and the files its boot copies onto it (its network
    file with ``match``); returns the seed folder."""
    hosts.prepare(host)
    seed = hosts.host_dir(host) / "seed"
    net = seed / "etc/systemd/network/10-tinsnip-lab.network"
    net.parent.mkdir(parents=True)
    for d in ("etc/systemd", "etc/systemd/network"):
        (seed / d).chmod(0o755)
    net.write_text(network_file(host, match))
    net.chmod(0o644)
    return seed


def start(host, lower, *, fresh=True):
    """Boot ``host`` in the background; return the pid of its ``systemd-nspawn``.

    :param bool fresh: a new, empty disk (``lab.up``); False boots the disk it had (a reboot).
    """
    if fresh:
        prepare(host)
    base = hosts.host_dir(host)
    if not (base / "disk").is_dir() and not fresh:
        raise LabError(f"{host} has no disk to boot from; lab.up first")
    # nsenter, not `ip netns exec`: that one mounts a fresh /sys, without the cgroup
    # hierarchies nspawn needs to see.
    return hosts.spawn_detached(host, [
        "nsenter", f"--net=/run/netns/{settings.netns_name(host)}", "unshare", "-m",
        "/bin/sh", "-c", _BOOT, "tslab-boot", host, str(lower), str(base),
        cgroup_path(host), settings.netns_name(host)])


def poweroff(host, pid, timeout=30.0):
    """Power ``host`` off from inside (``systemctl poweroff``) and wait for nspawn to end.

    Falls back to SIGKILL of every process in the host's namespace after ``timeout``.
    :returns: seconds until nspawn ended.
    """
    from tinsnip_lab import remote
    started = time.monotonic()
    try:
        remote.run_root(host, "systemctl poweroff", timeout=10)
    except (LabError, subprocess.TimeoutExpired):
        pass  # the connection may close as the host goes down
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not hosts.running(host, pid):
            return time.monotonic() - started
        time.sleep(0.05)
    hosts.wait_gone(host)
    return time.monotonic() - started


def remove_cgroups(host):
    """Remove ``host``'s cgroups (its processes must have ended), deepest first."""
    for name in CGROUP_HIERARCHIES:
        top = CGROUP_ROOT / name / cgroup_path(host)
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in dirs + [top]:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                raise LabError(f"could not remove cgroup {d}")
        try:
            (CGROUP_ROOT / name / CGROUP_PARENT).rmdir()
        except OSError:
            pass  # another slot's host still has its cgroup there


def leftover_cgroups():
    """Return this slot's systemd hosts' cgroups that exist now."""
    return [str(CGROUP_ROOT / name / cgroup_path(h)) for h in settings.SYSTEMD_HOSTS
            for name in CGROUP_HIERARCHIES if (CGROUP_ROOT / name / cgroup_path(h)).is_dir()]

