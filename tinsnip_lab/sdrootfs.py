"""The systemd hosts' root filesystem: bookworm with systemd as init, cached like the shared one.

It has its own cache files, so building it never touches the shared rootfs of the sshd hosts:

- ``sdbase-<hash>.tar.zst``: the raw ``debootstrap`` output with
  :data:`~tinsnip_lab.settings.SYSTEMD_ROOTFS_PACKAGES`;
- ``sdrootfs-<hash>.tar.zst``: the base plus the lab's files (the same ones the shared rootfs
  gets: Compose plugin, busybox image, sshd settings, NFS stand-ins) and what a booted systemd
  needs in a container (below).

The unpacked tree ``/var/lib/tinsnip-lab/sdrootfs-<hash>`` is the read-only lower layer of
every systemd host in every slot; its name carries its hash, so a newer tree never replaces
one that a running host of another slot uses. Building and unpacking hold a lock
(``sdrootfs.lock``), so two slots never build at once.
"""

import contextlib
import fcntl
import shutil
from pathlib import Path

from tinsnip_lab import rootfs, settings

LOCK = settings.STATE_DIR / "sdrootfs.lock"

#: Units of docker.io and friends that a machine host must not run as root, and timers that
#: would reach for a network the lab does not have.
MASKED_UNITS = (
    "docker.service", "docker.socket", "containerd.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "dpkg-db-backup.timer", "console-getty.service",
)

#: systemd-nspawn copies the outer /dev/net/tun with mode 0600 (rootlesskit then fails as the
#: user) and no udev runs in the container to fix it.
TMPFILES = ("# Written by the tinsnip lab: devices a rootless Docker and the FUSE NFS client use.\n"
            "z /dev/net/tun 0666 root root -\n"
            "z /dev/fuse 0666 root root -\n")


def base_key():
    """Return the hash naming the systemd hosts' debootstrap output."""
    return rootfs._sha(["sdbase", settings.SUITE, settings.MIRROR,
                        *sorted(settings.SYSTEMD_ROOTFS_PACKAGES)])


def key():
    """Return the hash naming the finished systemd rootfs."""
    here = Path(__file__).resolve().parent
    return rootfs._sha([
        "sdrootfs", base_key(), settings.COMPOSE_DIST, settings.COMPOSE_VERSION,
        settings.BUSYBOX_IMAGE, settings.BUSYBOX_TAG, settings.BUSYBOX_ARCHIVE,
        (here / "rootfs.py").read_bytes(), (here / "images.py").read_bytes(),
        (here / "sdrootfs.py").read_bytes(), rootfs._tree_digest(here / "nfs"),
    ])


def tree(k=None):
    """Return the unpacked tree of rootfs ``k`` (the current key by default)."""
    return settings.STATE_DIR / f"sdrootfs-{k or key()}"


@contextlib.contextmanager
def _locked():
    settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _debootstrap(log):
    return rootfs.debootstrap(f"sdbase-{base_key()}", settings.SYSTEMD_ROOTFS_PACKAGES, log)


def mask(root, units):
    """Mask ``units`` in the tree at ``root`` (links to /dev/null in /etc/systemd/system)."""
    for unit in units:
        path = root / "etc/systemd/system" / unit
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to("/dev/null")


def customize(root, log=print):
    """Add the lab's files and a container-ready systemd setup to an unpacked base at ``root``."""
    rootfs.customize(root, log)
    mask(root, MASKED_UNITS)
    # networkd brings up eth0 from the host's own .network file (written at first boot),
    # and with it network-online.target, which _netdev mounts from /etc/fstab wait for.
    rootfs._run(["chroot", str(root), "systemctl", "enable", "--quiet",
                 "systemd-networkd.service", "systemd-networkd-wait-online.service",
                 "remote-fs.target"])
    (root / "etc/tmpfiles.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/tmpfiles.d/tinsnip-lab.conf").write_text(TMPFILES)
    # A fresh machine id on each host's first boot, kept on its disk afterwards.
    (root / "etc/machine-id").write_text("")


def ensure(log=print):
    """Return the unpacked systemd rootfs for the current key, building or unpacking it once."""
    k = key()
    dest = tree(k)
    stamp = dest / rootfs.STAMP_NAME
    if stamp.exists():
        return dest
    with _locked():
        if stamp.exists():  # another slot finished it while we waited
            return dest
        settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tarball = settings.CACHE_DIR / f"sdrootfs-{k}.tar.zst"
        fresh = dest.with_name(dest.name + ".new")
        if fresh.exists():
            shutil.rmtree(fresh)
        if not tarball.exists():
            base = _debootstrap(log)
            log(f"lab: assembling systemd rootfs {k}")
            rootfs._unpack(base, fresh)
            customize(fresh, log)
            (fresh / rootfs.STAMP_NAME).write_text(k + "\n")
            rootfs._pack(fresh, tarball)
            for old in settings.CACHE_DIR.glob("sdrootfs-*.tar.zst"):
                if old != tarball:
                    old.unlink()
        else:
            rootfs._unpack(tarball, fresh)
        if dest.exists():
            shutil.rmtree(dest)
        fresh.rename(dest)
        log(f"lab: systemd rootfs {k} unpacked at {dest}")
    return dest


def prune_unpacked(keep, in_use):
    """Remove unpacked systemd rootfs trees other than ``keep`` when ``in_use`` is False (no
    lab slot on this machine runs hosts, so none boots from an older tree)."""
    if in_use:
        return
    for old in settings.STATE_DIR.glob("sdrootfs-*"):
        if old.is_dir() and old != keep:
            shutil.rmtree(old, ignore_errors=True)
