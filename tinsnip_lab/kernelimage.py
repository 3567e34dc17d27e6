"""The kernel hosts' disk image: Debian bookworm with its own kernel, booted by QEMU.

Built once from the machine's Debian mirror and cached under ``/var/cache/tinsnip-lab``:

- ``kbase-<hash>.tar.zst``: the raw ``debootstrap`` output with
  :data:`~tinsnip_lab.settings.KERNEL_PACKAGES` (a kernel, systemd, the kernel NFS server and
  client, rootless Docker's packages);
- ``kernel-<hash>/``: ``disk.img`` (an ext4 file system made with ``mkfs.ext4 -d``, no loop
  device; sparse), and the ``vmlinuz`` and ``initrd.img`` QEMU boots directly. Each VM boots a
  qcow2 overlay of ``disk.img``, which is never written.

While it is built the folder is ``kernel-<hash>.build``; it is renamed when complete, under
a lock (``kernel.lock``), so two labs asking at once build it once. Everything that differs
per host (name, address, SSH host key, authorised key, ``/etc/hosts``) is not in the image: a
boot unit, ``tinsnip-lab-seed.service``, unpacks it on every boot from a tarball QEMU hands the
guest through ``fw_cfg``, before the network and sshd start.
"""

import contextlib
import fcntl
import shutil
import time
from pathlib import Path

from tinsnip_lab import rootfs, sdrootfs, settings
from tinsnip_lab.errors import LabError

LOCK = settings.CACHE_DIR / "kernel.lock"
#: Size of the ext4 file system (sparse: only what is written takes space).
DISK_SIZE = "6G"
#: Name under which QEMU hands the host's seed tarball to the guest (``-fw_cfg``).
FW_CFG_SEED = "opt/tinsnip/seed"

_SEED_SCRIPT = """\
#!/bin/sh
# Written by the tinsnip lab: this host's own files (name, address, SSH keys, /etc/hosts),
# handed in by QEMU through fw_cfg, unpacked on every boot.
set -eu
modprobe qemu_fw_cfg 2>/dev/null || true
seed=/sys/firmware/qemu_fw_cfg/by_name/%s/raw
i=0
while [ ! -r "$seed" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
tar -xf "$seed" -C / --no-same-permissions --numeric-owner --overwrite
""" % FW_CFG_SEED

_SEED_UNIT = """\
# Written by the tinsnip lab.
[Unit]
Description=This lab host's own files from QEMU's fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-modules-load.service
Before=systemd-networkd.service ssh.service network-pre.target sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/tinsnip-lab-seed

[Install]
WantedBy=sysinit.target
"""

#: Units a lab VM does not need (timers that reach for the network, a getty on a screen).
MASKED_UNITS = sdrootfs.MASKED_UNITS + (
    "man-db.timer", "getty@tty1.service", "systemd-timesyncd.service",
    "e2scrub_reap.service",  # 22 s of every boot under emulation, for LVM snapshots it has none
)


def base_key():
    """Return the hash naming the kernel hosts' debootstrap output."""
    return rootfs._sha(["kbase", settings.SUITE, settings.MIRROR,
                        *sorted(settings.KERNEL_PACKAGES)])


def key():
    """Return the hash naming the finished image (base plus every file the lab adds)."""
    here = Path(__file__).resolve().parent
    return rootfs._sha([
        "kernel", base_key(), settings.COMPOSE_DIST, settings.COMPOSE_VERSION,
        settings.BUSYBOX_IMAGE, settings.BUSYBOX_TAG, settings.BUSYBOX_ARCHIVE, DISK_SIZE,
        *((here / name).read_bytes() for name in ("kernelimage.py", "rootfs.py", "sdrootfs.py",
                                                    "images.py")),
    ])


def image_dir(k=None):
    """Return the cached image folder of key ``k`` (the current key by default)."""
    return settings.CACHE_DIR / f"kernel-{k or key()}"


@contextlib.contextmanager
def _locked():
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def customize(root, log=print):
    """Make the unpacked base at ``root`` a lab kernel host (modified in place): the lab's
    files of every host but its NFS stand-ins, then what a booted VM needs."""
    rootfs.customize(root, log, stand_ins=False)
    _write(root / "etc/fstab", "# Written by the tinsnip lab.\n/dev/vda / ext4 rw,relatime 0 1\n")
    sdrootfs.mask(root, MASKED_UNITS)
    _write(root / "usr/local/sbin/tinsnip-lab-seed", _SEED_SCRIPT, 0o755)
    _write(root / "etc/systemd/system/tinsnip-lab-seed.service", _SEED_UNIT)
    rootfs._run(["chroot", str(root), "systemctl", "enable", "--quiet",
                 "tinsnip-lab-seed.service", "systemd-networkd.service",
                 "systemd-networkd-wait-online.service", "remote-fs.target"])
    # Each boot's machine id is made on first boot and kept on the host's overlay.
    (root / "etc/machine-id").write_text("")


def _kernel_files(root):
    """Return (vmlinuz, initrd) inside ``root``, the newest kernel installed."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError(f"no kernel in {root}/boot (is linux-image-amd64 in the packages?)")
    version = kernels[-1].name[len("vmlinuz-"):]
    initrd = root / "boot" / f"initrd.img-{version}"
    if not initrd.exists():
        raise LabError(f"no initrd for kernel {version} in {root}/boot")
    return kernels[-1], initrd


def ensure(log=print):
    """Return the cached image folder (``disk.img``, ``vmlinuz``, ``initrd.img``), building it
    the first time (debootstrap about 2 minutes, the file system a few seconds).

    :raises LabError: a tool is missing or a step failed.
    """
    k = key()
    done = image_dir(k)
    if (done / "disk.img").exists():
        return done
    with _locked():
        if (done / "disk.img").exists():  # another lab built it while we waited
            return done
        if shutil.which("mkfs.ext4") is None:
            raise LabError("mkfs.ext4 is not installed; run .ci/lab-deps.sh")
        started = time.monotonic()
        build = done.with_name(done.name + ".build")
        if build.exists():
            shutil.rmtree(build)
        build.mkdir(parents=True)
        base = rootfs.debootstrap(f"kbase-{base_key()}", settings.KERNEL_PACKAGES, log)
        log(f"lab: assembling the kernel hosts' image {k}")
        tree = build / "root"
        rootfs._unpack(base, tree)
        customize(tree, log)
        vmlinuz, initrd = _kernel_files(tree)
        shutil.copy2(vmlinuz, build / "vmlinuz")
        shutil.copy2(initrd, build / "initrd.img")
        rootfs._run(["mkfs.ext4", "-q", "-F", "-L", "tinsnip-lab", "-d", str(tree),
                     str(build / "disk.img"), DISK_SIZE])
        shutil.rmtree(tree)
        build.rename(done)
        log(f"lab: kernel hosts' image built in {time.monotonic() - started:.0f}s: {done}")
    return done


def prune(keep, in_use):
    """Remove cached images other than ``keep`` when no lab slot runs hosts (``in_use`` False),
    since a running VM's overlay reads its image."""
    if in_use:
        return
    for old in settings.CACHE_DIR.glob("kernel-*"):
        if old.is_dir() and old != keep and not old.name.endswith(".build"):
            shutil.rmtree(old, ignore_errors=True)
