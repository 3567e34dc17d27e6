"""The lab's NFS stand-ins: a userspace NFS server on the NAS and a userspace client on machines.

This kernel has neither an NFS server nor an NFS client, so the lab replaces both, keeping the
commands tinsnip runs on real hosts:

- On the NAS, ``exportfs`` (installed as ``/usr/local/sbin/exportfs``, ahead of nfs-utils' in
  ``PATH``) checks ``/etc/exports`` as a real NAS would and serves it with nfs-ganesha, so the
  client list, ``rw``/``ro``, ``all_squash`` and ``anonuid``/``anongid`` are enforced for real.
  :data:`NAS_START_COMMAND` starts rpcbind and ganesha.nfsd on a freshly booted NAS.
- On machines, ``mount.nfs`` (installed as ``/sbin/mount.nfs``, also ``mount.nfs4``) is called by
  ``mount`` for an ``nfs`` line of ``/etc/fstab``; it mounts the export through FUSE with a
  userspace NFSv3 client (libnfs) instead of the kernel.

The lab calls :func:`install_into_rootfs` when it builds the hosts' shared root filesystem.
"""

import os
from pathlib import Path

#: Directory of the files installed on the hosts (the rootfs hash covers it).
NFS_FILES_DIR = Path(__file__).resolve().parent / "files"

#: Shell command run as root inside the NAS once its sshd is up.
NAS_START_COMMAND = "/usr/local/sbin/tinsnip-nas-start"

#: Marker present in every file this package installs, to tell ours from a distribution's.
MARKER = b"stand-in"

_KERNEL_CLIENT_SUFFIX = ".kernel-client"


def _inside(rootfs_dir, path):
    """Return ``path`` (absolute, as seen on the host) inside ``rootfs_dir``, following the
    rootfs's own symlinks (``/sbin`` -> ``usr/sbin`` on merged-/usr Debian) within it."""
    root = Path(rootfs_dir)
    current = root
    for part in Path(path).relative_to("/").parts[:-1]:
        nxt = current / part
        for _ in range(16):
            if not nxt.is_symlink():
                break
            link = os.readlink(nxt)
            nxt = (root / link.lstrip("/")) if link.startswith("/") else (nxt.parent / link)
        current = nxt
    return current / Path(path).name


def _install(src, dest, mode):
    """Copy ``src`` to ``dest`` atomically unless it is already identical; return True if
    something changed."""
    data = src.read_bytes()
    if dest.is_file() and not dest.is_symlink() and dest.read_bytes() == data \
            and (dest.stat().st_mode & 0o7777) == mode:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tinsnip-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, dest)
    return True


def _replace_tool(rootfs_dir, path, src):
    """Put ``src`` at ``path``, keeping a distribution binary found there as
    ``path.kernel-client`` (what ``dpkg-divert --rename`` would do)."""
    dest = _inside(rootfs_dir, path)
    if dest.exists() and not dest.is_symlink() and MARKER not in dest.read_bytes():
        os.replace(dest, dest.with_name(dest.name + _KERNEL_CLIENT_SUFFIX))
    return _install(src, dest, 0o755)


def _link(rootfs_dir, path, target_name):
    dest = _inside(rootfs_dir, path)
    if dest.is_symlink() and os.readlink(dest) == target_name:
        return False
    if dest.exists() and not dest.is_symlink() and MARKER not in dest.read_bytes():
        os.replace(dest, dest.with_name(dest.name + _KERNEL_CLIENT_SUFFIX))
    elif dest.is_symlink() or dest.exists():
        dest.unlink()
    dest.symlink_to(target_name)
    return True


def install_into_rootfs(rootfs_dir, log=None):
    """Install the NFS stand-ins into a root filesystem tree. Idempotent.

    Puts ``exportfs`` and ``tinsnip-nas-start`` in ``/usr/local/sbin``, the exports parser in
    ``/usr/local/lib/tinsnip-nfs``, ``mount.nfs`` in ``/sbin`` (with ``mount.nfs4``,
    ``umount.nfs`` and ``umount.nfs4`` pointing to it; nfs-common's binaries are kept beside
    them with a ``.kernel-client`` suffix), an empty ``/etc/exports`` when there is none, a
    ganesha configuration with no exports, and the directories the server needs.

    :param rootfs_dir: the root of the tree (a ``Path`` or string).
    :param log: optional callable receiving one line per change.
    :returns: list of paths (inside the tree) that changed.
    """
    from . import exports

    root = Path(rootfs_dir)
    if not (root / "usr").is_dir():
        raise FileNotFoundError(f"{root} does not look like a root filesystem (no /usr)")
    changed = []

    def note(flag, path):
        if flag:
            changed.append(path)
            if log:
                log(f"nfs: installed {path}")

    files = NFS_FILES_DIR
    note(_install(files / "exportfs", _inside(root, "/usr/local/sbin/exportfs"), 0o755),
         "/usr/local/sbin/exportfs")
    note(_install(files / "tinsnip-nas-start",
                  _inside(root, "/usr/local/sbin/tinsnip-nas-start"), 0o755),
         "/usr/local/sbin/tinsnip-nas-start")
    note(_install(Path(exports.__file__), _inside(root, "/usr/local/lib/tinsnip-nfs/exports.py"),
                  0o644), "/usr/local/lib/tinsnip-nfs/exports.py")
    note(_replace_tool(root, "/sbin/mount.nfs", files / "mount.nfs"), "/sbin/mount.nfs")
    for name in ("mount.nfs4", "umount.nfs", "umount.nfs4"):
        note(_link(root, f"/sbin/{name}", "mount.nfs"), f"/sbin/{name}")

    etc_exports = _inside(root, "/etc/exports")
    if not etc_exports.exists():
        etc_exports.write_text("")
        note(True, "/etc/exports")
    conf = _inside(root, "/etc/ganesha/ganesha.conf")
    empty = exports.render_ganesha([], {})
    ours = conf.exists() and b"Generated by the lab" in conf.read_bytes()
    if not ours:  # missing, or the distribution's sample configuration
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(empty)
        note(True, "/etc/ganesha/ganesha.conf")
    for d in ("/var/run/ganesha", "/var/lib/nfs/ganesha", "/var/lib/tinsnip-nfs",
              "/var/log/tinsnip-nfs", "/volume1"):
        target = _inside(root, d)
        if not target.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            note(True, d)
    return changed


__all__ = ["NFS_FILES_DIR", "NAS_START_COMMAND", "install_into_rootfs"]
