"""Start and stop the lab's hosts.

A host is one process tree: ``ip netns exec tslab-<host> unshare -m -u -i -p -f --kill-child``
runs a short shell script (``_INIT``) that mounts an overlay (shared rootfs below, the host's
disk folder above), ``/proc``, ``/sys``, a small ``/dev``, ``/run``, ``/tmp`` and ``/home``
(bound from the disk folder), copies the host's own files (hostname, hosts, SSH keys) into the
overlay, sets the hostname, pivots into the new root and becomes ``sshd -D -e``. Every mount
lives in the host's own mount namespace, so it disappears with the host's processes.

The disk folder (``disk/`` under the host's working directory, on this machine's filesystem)
outlives the host's processes: `start` with ``fresh=False`` is a reboot that keeps what was
written to ``/`` and ``/home``, while ``/run``, ``/tmp``, mounts and processes start empty,
as on a real machine whose init starts nothing but sshd.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

from tinsnip_lab.errors import LabError
from tinsnip_lab import network, settings, sshkeys

HOSTS_DIR = settings.SLOT_DIR / "hosts"

# Runs inside the host's new namespaces, still seeing the outer filesystem.
# $1 host name, $2 lower layer (rootfs), $3 the host's working directory.
_INIT = r"""
set -eu
host=$1 lower=$2 dir=$3 r=$3/root
mount --make-rprivate /
mkdir -p "$dir/disk/upper" "$dir/disk/work" "$dir/disk/home"
mount -t overlay -o "lowerdir=$lower,upperdir=$dir/disk/upper,workdir=$dir/disk/work" \
    "tslab-$host" "$r"
cp -a "$dir/seed/." "$r/"
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs "$r/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup" 2>/dev/null || true
mount -t tmpfs -o mode=0755,nosuid,size=1m dev "$r/dev"
d=$r/dev
mknod -m 666 "$d/null" c 1 3
mknod -m 666 "$d/zero" c 1 5
mknod -m 666 "$d/full" c 1 7
mknod -m 666 "$d/random" c 1 8
mknod -m 666 "$d/urandom" c 1 9
mknod -m 666 "$d/tty" c 5 0
mknod -m 666 "$d/fuse" c 10 229
mkdir -m 755 "$d/net" "$d/pts"
mknod -m 666 "$d/net/tun" c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$d/pts"
ln -s pts/ptmx "$d/ptmx"
mkdir -m 1777 "$d/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$d/shm"
mkdir -m 1777 "$d/mqueue"
ln -s /proc/self/fd "$d/fd"
ln -s /proc/self/fd/0 "$d/stdin"
ln -s /proc/self/fd/1 "$d/stdout"
ln -s /proc/self/fd/2 "$d/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$r/run"
mkdir -m 755 "$r/run/sshd" "$r/run/user" "$r/run/lock"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$r/tmp"
# Homes on the disk folder itself, not on the overlay: rootless Docker keeps its data under
# ~/.local/share/docker and can use overlay2 there (an overlay upper cannot be overlayfs).
chmod 0755 "$dir/disk/home"
mount --bind "$dir/disk/home" "$r/home"
hostname "$host"
cd "$r"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 /usr/sbin/sshd -D -e
"""


def host_dir(host):
    """Return the host's working directory (mount points, seed files, console log)."""
    return HOSTS_DIR / host


def etc_hosts():
    """Return the /etc/hosts text shared by every lab host."""
    lines = ["127.0.0.1\tlocalhost", f"{settings.OUTER_IP}\tlab-outer"]
    lines += [f"{ip}\t{host}" for host, ip in settings.LAB_HOSTS.items()]
    lines += ["::1\tlocalhost ip6-localhost ip6-loopback", "ff02::1\tip6-allnodes",
              "ff02::2\tip6-allrouters"]
    return "\n".join(lines) + "\n"


def resolv_conf():
    """Return the /etc/resolv.conf of every lab host: this machine's end of the lab network as
    the name server. Nothing serves DNS there and it says so at once (port unreachable), so a
    lookup that /etc/hosts does not answer fails at once. A rootless daemon asks its own DNS
    first (slirp4netns forwards it to this server); with no server named it waited 2 x 5 s
    for every registry it reached by name."""
    return ("# The tinsnip lab has no DNS: host names are in /etc/hosts.\n"
            f"nameserver {settings.OUTER_IP}\n")


def _write(path, text, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def prepare(host):
    """Lay out the host's working directory and the files copied into its overlay."""
    base = host_dir(host)
    if base.exists():
        shutil.rmtree(base)
    for sub in ("disk", "root"):
        (base / sub).mkdir(parents=True)
    base.chmod(0o700)
    seed = base / "seed"
    _write(seed / "etc/hostname", host + "\n", 0o644)
    _write(seed / "etc/hosts", etc_hosts(), 0o644)
    _write(seed / "etc/resolv.conf", resolv_conf(), 0o644)
    keys = sshkeys.host_key_dir(host)
    for name, mode in ((sshkeys.HOST_KEY, 0o600), (sshkeys.HOST_KEY + ".pub", 0o644)):
        _write(seed / "etc/ssh" / name, (keys / name).read_text(), mode)
    _write(seed / "root/.ssh/authorized_keys", sshkeys.public_client_key() + "\n", 0o600)
    for d, mode in (("etc", 0o755), ("etc/ssh", 0o755), ("root", 0o700), ("root/.ssh", 0o700)):
        (seed / d).chmod(mode)
    seed.chmod(0o755)


# Writes its own pid, then becomes `ip netns exec ... unshare ...` (same pid: exec, not fork).
_DETACH = 'echo $$ > "$1"; shift; exec "$@"'


def start(host, lower, *, fresh=True):
    """Start ``host`` in the background and return the pid of its ``unshare`` process.

    The host is detached (``setsid -f``): its parent is PID 1, not the process that started
    it, so whichever process takes the lab down later sees its processes reaped.
    The network namespace must exist. Returns at once; see `wait_for_ssh`.

    :param bool fresh: a new, empty disk (``lab.up``); False starts on the disk it had.
    """
    if fresh:
        prepare(host)
    elif not (host_dir(host) / "disk").is_dir():
        raise LabError(f"{host} has no disk to start from; lab.up first")
    return spawn_detached(host, ["ip", "netns", "exec", settings.netns_name(host),
                                 "unshare", "-m", "-u", "-i", "-p", "-f", "--kill-child",
                                 "/bin/sh", "-c", _INIT, "tslab-init", host, str(lower),
                                 str(host_dir(host))])


def spawn_detached(host, argv):
    """Run ``argv`` detached from this process (its parent is PID 1), output to the host's
    console log; return its pid (``argv`` must exec, never fork, into the host's PID 1)."""
    pid_file = host_dir(host) / "pid"
    pid_file.unlink(missing_ok=True)
    console = open(host_dir(host) / "console.log", "ab")
    try:
        subprocess.run(
            ["setsid", "-f", "/bin/sh", "-c", _DETACH, "tslab-detach", str(pid_file), *argv],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, close_fds=True,
            check=True)
    finally:
        console.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.005)
    raise LabError(f"{host}: no pid from its start command in {pid_file}")


def ssh_answers(ip, timeout=0.5):
    """Return True if an SSH server greets on ``ip`` port 22."""
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(host, pid, timeout=15.0):
    """Wait until ``host``'s sshd greets; raise LabError with its console log if it does not."""
    ip = settings.LAB_HOSTS[host]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh_answers(ip, timeout=0.3):
            return
        if not _alive(pid):
            break
        time.sleep(0.05)
    log_path = host_dir(host) / "console.log"
    tail = log_path.read_text(errors="replace").strip().splitlines()[-8:] \
        if log_path.exists() else []
    raise LabError(f"{host}: sshd did not come up at {ip}:22\n  " + "\n  ".join(tail))


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def running(host, pid):
    """Return True if ``pid`` is alive and inside ``host``'s network namespace."""
    inode = network.netns_inode(settings.netns_name(host))
    if inode is None or not pid or not _alive(pid):
        return False
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except OSError:
        return False


def pids_of(host):
    """Return the live pids inside ``host``'s network namespace."""
    return [p for p in network.pids_in_netns(settings.netns_name(host)) if _alive(p)]


def wait_gone(host, timeout=30.0):
    """SIGKILL every process of ``host`` and wait until they are gone (a power cut)."""
    _kill_until_gone(lambda: pids_of(host), timeout)


def kill_all(log=print, timeout=30.0):
    """SIGKILL every process inside any lab namespace and wait until they are gone.

    ``unshare`` ignores SIGTERM, and killing a host's PID 1 ends its whole PID namespace.
    A killed process stays in the process table as a zombie until its parent reaps it (this
    process, for hosts it started; else PID 1): return only when every one has left it.
    """
    _kill_until_gone(lambda: [p for ns in network.lab_namespaces()
                              for p in network.pids_in_netns(ns) if _alive(p)], timeout)


def _kill_until_gone(find, timeout):
    deadline = time.monotonic() + timeout
    seen = set()
    while True:
        alive = find()
        seen.update(alive)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in seen:
            _reap(pid)
        left = sorted(p for p in seen if os.path.exists(f"/proc/{p}"))
        if not alive and not left:
            return
        if time.monotonic() > deadline:
            raise LabError(f"lab processes still present after {timeout:.0f}s: {left or alive}")
        time.sleep(0.02)


def _reap(pid):
    """Collect ``pid``'s exit status if this process is its parent."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def clear_dirs():
    """Remove the hosts' working directories (their mounts are gone with their processes)."""
    if HOSTS_DIR.exists():
        shutil.rmtree(HOSTS_DIR)
