"""The lab's NFS stand-ins over real SSH: nfs-ganesha behind exportfs on ds412plus, and the
FUSE mount.nfs on homelab1/homelab2.

The tests share one export under /volume1/tinsnip-nfs-test, for homelab1 only, squashed to
ANON; they restore /etc/exports, /etc/fstab and the users they touch when done. If the lab was
built before the last change to tinsnip_tasks/lab/nfs, the hosts get the current copies of
the stand-ins first, so the tests always exercise this checkout's code.
"""

import hashlib
import shlex
import time
from pathlib import Path

import pytest

from tinsnip_lab import nfs

pytestmark = pytest.mark.lab

NAS, CLIENT, OTHER = "ds412plus", "homelab1", "homelab2"
ANON = 10190
EXPORT = "/volume1/tinsnip-nfs-test/export"
MOUNT = "/mnt/tinsnip-nfs-test"
FSTAB_LINE = f"{NAS}:{EXPORT} {MOUNT} nfs rw,hard,vers=3,_netdev 0 0"
LINE = f"{EXPORT} {CLIENT}(rw,sync,all_squash,anonuid={ANON},anongid={ANON},no_subtree_check)"
USER, USER_UID = "tsnfsuser", 23456
q = shlex.quote

_INSTALLED = {
    "/usr/local/sbin/exportfs": nfs.NFS_FILES_DIR / "exportfs",
    "/usr/local/sbin/tinsnip-nas-start": nfs.NFS_FILES_DIR / "tinsnip-nas-start",
    "/usr/local/lib/tinsnip-nfs/exports.py": Path(nfs.__file__).parent / "exports.py",
    "/sbin/mount.nfs": nfs.NFS_FILES_DIR / "mount.nfs",
}


def _sync_stand_ins(lab, host):
    for remote, local in _INSTALLED.items():
        want = hashlib.sha256(local.read_bytes()).hexdigest()
        have = lab.run(host, f"sha256sum {q(remote)} 2>/dev/null", warn=True).stdout.split()
        if not have or have[0] != want:
            conn = lab.connection(host)
            real = lab.run(host, f"readlink -f {q(remote)}").stdout.strip()
            conn.put(str(local), real + ".tinsnip-new")
            lab.run(host, f"chmod {oct(local.stat().st_mode & 0o777)[2:]} "
                          f"{q(real + '.tinsnip-new')} && mv {q(real + '.tinsnip-new')} {q(real)}")


def _exports_without_ours(text):
    return "".join(line + "\n" for line in text.splitlines() if EXPORT not in line)


def _fstab_without_ours(text):
    return "".join(line + "\n" for line in text.splitlines() if MOUNT not in line)


def _write(lab, host, path, text):
    lab.run(host, f"printf %s {q(text)} > {q(path)}.tmp && mv {q(path)}.tmp {q(path)}")


@pytest.fixture(scope="module")
def export(lab):
    """Serve EXPORT to homelab1 from ds412plus; undo everything afterwards."""
    for host in (NAS, CLIENT, OTHER):
        _sync_stand_ins(lab, host)
    assert lab.run(NAS, "pgrep -x ganesha.nfsd", warn=True).ok, \
        f"ganesha.nfsd is not running on {NAS}: the lab should have run {nfs.NAS_START_COMMAND}"
    original = lab.read(NAS, "/etc/exports")
    lab.run(NAS, f"mkdir -p {q(EXPORT)} && chown {ANON}:{ANON} {q(EXPORT)}")
    _write(lab, NAS, "/etc/exports", _exports_without_ours(original) + LINE + "\n")
    result = lab.run(NAS, "exportfs -ra", warn=True)
    assert result.ok, result.stderr
    yield EXPORT
    for host in (CLIENT, OTHER):
        lab.run(host, f"umount {q(MOUNT)} 2>/dev/null; rmdir {q(MOUNT)} 2>/dev/null; "
                      f"userdel -r {USER} 2>/dev/null", warn=True)
        _write(lab, host, "/etc/fstab", _fstab_without_ours(lab.read(host, "/etc/fstab")))
    _write(lab, NAS, "/etc/exports", _exports_without_ours(lab.read(NAS, "/etc/exports")))
    lab.run(NAS, "exportfs -ra", warn=True)
    lab.run(NAS, "rm -rf /volume1/tinsnip-nfs-test")


def _owner(lab, path):
    return lab.run(NAS, f"stat -c %u:%g {q(path)}").stdout.strip()


def test_nas_serves_an_export_written_to_etc_exports(lab, export):
    listed = lab.run(NAS, "exportfs -v").stdout
    assert f"{CLIENT}(rw,sync,all_squash,anonuid={ANON}" in listed
    assert lab.run(CLIENT, f"nfs-ls nfs://{NAS}{export}", warn=True).ok


def test_a_file_written_as_root_lands_owned_by_the_anon_uid(lab, export):
    lab.run(CLIENT, "head -c 20000 /dev/urandom > /tmp/tsnfs-root.bin")
    lab.run(CLIENT, f"nfs-cp /tmp/tsnfs-root.bin nfs://{NAS}{export}/root.bin")
    assert _owner(lab, f"{export}/root.bin") == f"{ANON}:{ANON}"
    here = lab.run(CLIENT, "sha256sum < /tmp/tsnfs-root.bin").stdout.split()[0]
    there = lab.run(NAS, f"sha256sum < {q(export)}/root.bin").stdout.split()[0]
    assert here == there
    lab.run(CLIENT, "rm -f /tmp/tsnfs-root.bin")


def test_a_bad_exports_file_is_refused_and_the_old_exports_stay_served(lab, export):
    good = lab.read(NAS, "/etc/exports")
    bad = good + f"{export} {OTHER}(rw,anonuid=abc,no_subtree_check)\n"
    _write(lab, NAS, "/etc/exports", bad)
    try:
        result = lab.run(NAS, "exportfs -ra", warn=True)
        assert result.exited != 0
        assert 'bad anonuid "anonuid=abc"' in result.stderr
        assert lab.run(CLIENT, f"nfs-ls nfs://{NAS}{export}", warn=True).ok
        assert not lab.run(OTHER, f"nfs-ls nfs://{NAS}{export}", warn=True).ok
    finally:
        _write(lab, NAS, "/etc/exports", good)
    assert lab.run(NAS, "exportfs -ra", warn=True).ok


def test_a_host_not_listed_is_refused(lab, export):
    result = lab.run(OTHER, f"nfs-ls nfs://{NAS}{export}", warn=True)
    assert not result.ok and "MNT3ERR_ACCES" in result.stderr + result.stdout
    lab.run(OTHER, f"mkdir -p {q(MOUNT)}")
    result = lab.run(OTHER, f"mount -t nfs -o vers=3 {NAS}:{export} {q(MOUNT)}", warn=True)
    assert result.exited == 32
    assert f"access denied by server while mounting {NAS}:{export}" in result.stderr
    assert not lab.run(OTHER, f"mountpoint -q {q(MOUNT)}", warn=True).ok


def test_homelab1_mounts_from_fstab_and_a_user_write_lands_as_the_anon_uid(lab, export):
    lab.run(CLIENT, f"mkdir -p {q(MOUNT)} && grep -qxF {q(FSTAB_LINE)} /etc/fstab "
                    f"|| echo {q(FSTAB_LINE)} >> /etc/fstab")
    result = lab.run(CLIENT, f"mount {q(MOUNT)}", warn=True)
    assert result.ok, result.stderr
    fields = lab.run(CLIENT, f"findmnt -n -o SOURCE,FSTYPE {q(MOUNT)}").stdout.split()
    assert fields == [f"{NAS}:{export}", "fuse.nfs"]
    lab.run(CLIENT, f"id -u {USER} >/dev/null 2>&1 || useradd -m -u {USER_UID} {USER}")
    lab.run(CLIENT, f"su {USER} -c " + q(f"echo written-by-user > {MOUNT}/user.txt && "
                                          f"mkdir {MOUNT}/userdir && ln -s user.txt {MOUNT}/ln"))
    assert lab.read(NAS, f"{export}/user.txt") == "written-by-user\n"
    assert _owner(lab, f"{export}/user.txt") == f"{ANON}:{ANON}"
    assert _owner(lab, f"{export}/userdir") == f"{ANON}:{ANON}"
    assert lab.run(NAS, f"readlink {q(export)}/ln").stdout.strip() == "user.txt"


def test_the_mount_survives_the_ssh_session_that_made_it(lab, export):
    if not lab.run(CLIENT, f"mountpoint -q {q(MOUNT)}", warn=True).ok:
        assert lab.run(CLIENT, f"mount {q(MOUNT)}", warn=True).ok
    lab.connection(CLIENT).close()
    time.sleep(0.5)
    assert lab.run(CLIENT, f"mountpoint -q {q(MOUNT)}", warn=True).ok
    lab.run(CLIENT, f"echo again > {q(MOUNT)}/after.txt")
    assert lab.read(NAS, f"{export}/after.txt") == "again\n"
    assert lab.run(CLIENT, "pgrep -f '^/usr/bin/python3 /sbin/mount.nfs'", warn=True).ok


DOCK_USER, DOCK_UID, DOCK_SUBIDS = "tsnfsdock", 4712, "296608:65536"
DOCK_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
DOCK_PIDFILE = "/run/tsnfs-dockerd.pid"


def _as_dock_user(cmd):
    env = (f"HOME=/home/{DOCK_USER} USER={DOCK_USER} XDG_RUNTIME_DIR=/run/user/{DOCK_UID} "
           f"PATH={DOCK_PATH} DOCKER_HOST=unix:///run/user/{DOCK_UID}/docker.sock")
    return (f"setpriv --reuid={DOCK_UID} --regid={DOCK_UID} --init-groups env -i {env} "
            f"sh -c {q(cmd)}")


def test_a_rootless_container_writes_through_a_bind_mount_of_the_nfs_mount(lab, export):
    if not lab.run(CLIENT, f"mountpoint -q {q(MOUNT)}", warn=True).ok:
        assert lab.run(CLIENT, f"mount {q(MOUNT)}", warn=True).ok
    lab.run(CLIENT, f"id {DOCK_USER} >/dev/null 2>&1 || useradd -m -u {DOCK_UID} {DOCK_USER}; "
                    f"for db in /etc/subuid /etc/subgid; do grep -q '^{DOCK_USER}:' $db "
                    f"|| echo {DOCK_USER}:{DOCK_SUBIDS} >> $db; done; "
                    f"install -d -m 700 -o {DOCK_USER} -g {DOCK_USER} /run/user/{DOCK_UID}")
    daemon = _as_dock_user("exec /usr/share/docker.io/contrib/dockerd-rootless.sh")
    lab.run(CLIENT, f"setsid -f sh -c {q(f'echo $$ > {DOCK_PIDFILE}; exec {daemon}')} "
                    f">/tmp/tsnfs-dockerd.log 2>&1 </dev/null")
    try:
        deadline = time.monotonic() + 15
        while not lab.run(CLIENT, _as_dock_user("docker info >/dev/null 2>&1"), warn=True).ok:
            assert time.monotonic() < deadline, \
                lab.run(CLIENT, "tail -n 20 /tmp/tsnfs-dockerd.log", warn=True).stdout
            time.sleep(0.1)
        lab.run(CLIENT, _as_dock_user("docker load -q -i /opt/tinsnip/images/busybox.tar"))
        out = lab.run(CLIENT, _as_dock_user(
            f"docker run --rm -v {MOUNT}:/data tinsnip/busybox:1.35 "
            "sh -c 'echo from-container > /data/container.txt && cat /data/container.txt'"))
        assert out.stdout.strip() == "from-container"
        assert lab.read(NAS, f"{export}/container.txt") == "from-container\n"
        assert _owner(lab, f"{export}/container.txt") == f"{ANON}:{ANON}"
    finally:
        lab.run(CLIENT, f"test -s {DOCK_PIDFILE} && kill $(cat {DOCK_PIDFILE}); "
                        f"for i in $(seq 50); do kill -0 $(cat {DOCK_PIDFILE}) 2>/dev/null "
                        f"|| break; sleep 0.1; done; rm -f {DOCK_PIDFILE} /tmp/tsnfs-dockerd.log; "
                        f"sed -i '/^{DOCK_USER}:/d' /etc/subuid /etc/subgid; "
                        f"userdel -r {DOCK_USER} 2>/dev/null; rm -rf /run/user/{DOCK_UID}",
                warn=True)


def test_mount_a_skips_what_is_mounted_and_umount_ends_the_client(lab, export):
    if not lab.run(CLIENT, f"mountpoint -q {q(MOUNT)}", warn=True).ok:
        assert lab.run(CLIENT, f"mount {q(MOUNT)}", warn=True).ok
    assert lab.run(CLIENT, "mount -a -t nfs", warn=True).ok
    count = lab.run(CLIENT, f"findmnt -n {q(MOUNT)} | wc -l").stdout.strip()
    assert count == "1"
    assert lab.run(CLIENT, f"umount {q(MOUNT)}", warn=True).ok
    assert not lab.run(CLIENT, f"mountpoint -q {q(MOUNT)}", warn=True).ok
    deadline = time.monotonic() + 3
    while lab.run(CLIENT, f"pgrep -f 'mount.nfs {NAS}:{export} '", warn=True).ok:
        assert time.monotonic() < deadline, "mount.nfs still runs after umount"
        time.sleep(0.1)
