"""The gate's scripts run here for real: the digest check before the seed sources anything, the
link that replaces the old mount point, ending every process of a UID range, and finding a
mount namespace that still holds an export."""
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tinsnip_tasks.errors import ConflictError, LeftBehind
from tinsnip_tasks.ops import gate
from tinsnip_tasks.ops.docker import seed_env
from tinsnip_tasks.ops.gate import (DaemonOffOldMount, GateLink, NowhereMounted, end_processes,
                                    mount_holders, pids_of, subid_range)

from local_steps import StepFailed, converge

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="runs scripts as root and other UIDs")


@pytest.fixture
def mount(tmp_path, monkeypatch):
    """A mount point with machine.env and a service's .env, and their digests recorded."""
    monkeypatch.setattr(gate, "GATE_ROOT", str(tmp_path / "gates"))
    mp = tmp_path / "gazette-prod"
    (mp / ".machine").mkdir(parents=True)
    (mp / "service" / "hello").mkdir(parents=True)
    (mp / ".machine" / "machine.env").write_text("TIN_SERVICE_UID=10100\n")
    (mp / "service" / "hello" / ".env").write_text("HELLO=1\n")
    sums = Path(gate.sums_file(str(mp)))
    sums.parent.mkdir(parents=True)
    sums.write_text("# tinsnip: ignored comment\n" + "".join(
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f}\n"
        for f in (mp / ".machine" / "machine.env", mp / "service" / "hello" / ".env")))
    return mp


def sourced(mp, tmp_path):
    script = seed_env(str(mp), str(mp / "service" / "hello")) + ' && echo "ran $TIN_SERVICE_UID $HELLO"'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path)


def test_files_as_written_are_sourced(mount, tmp_path):
    p = sourced(mount, tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "ran 10100 1", p.stderr


@pytest.mark.parametrize("name, fix", [("service/hello/.env", "run service.deploy"),
                                       (".machine/machine.env", "run machine.setup")])
def test_a_planted_line_runs_nothing_and_names_the_file_and_the_fix(mount, tmp_path, name, fix):
    canary = tmp_path / "canary"
    with open(mount / name, "a") as f:
        f.write(f"X=$(touch {canary})\n")
    p = sourced(mount, tmp_path)
    assert p.returncode != 0 and "ran" not in p.stdout and not canary.exists()
    assert f"{mount}/{name}: not the file tinsnip wrote" in p.stderr and fix in p.stderr


@pytest.mark.parametrize("sums_text", ["", None, "abc  /elsewhere/.env\n"],
                         ids=["empty", "missing", "other-path"])
def test_no_recorded_digest_sources_nothing(mount, tmp_path, sums_text):
    sums = Path(gate.sums_file(str(mount)))
    if sums_text is None:
        sums.unlink()
    else:
        sums.write_text(sums_text)
    p = sourced(mount, tmp_path)
    assert p.returncode != 0 and "ran" not in p.stdout and "not the file tinsnip wrote" in p.stderr


def test_the_status_form_checks_the_same_way(mount, tmp_path):
    from tinsnip_tasks.ops.docker import compose_pattern
    body = compose_pattern('"$1"', '"$2"', "version", words=True, sums=gate.sums_file(str(mount)))
    body = body.replace("docker compose version", 'echo "ran $HELLO"')
    ok = subprocess.run(["bash", "-c", body, "_", str(mount), str(mount / "service/hello")],
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "ran 1", ok.stderr
    (mount / "service/hello/.env").write_text("HELLO=2\n")
    bad = subprocess.run(["bash", "-c", body, "_", str(mount), str(mount / "service/hello")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "ran" not in bad.stdout


# -- the link --------------------------------------------------------------------------------

@pytest.fixture
def mnt():
    """A folder only root writes, standing in for /mnt."""
    d = Path(tempfile.mkdtemp(prefix="tinsnip-gate-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


@root_only
def test_the_old_mount_point_folder_becomes_a_link(mnt):
    (mnt / "gazette-prod").mkdir()
    link = GateLink(str(mnt / "gazette-prod"), "/var/lib/tinsnip/gazette-prod/nfs")
    assert converge(link)
    assert os.readlink(mnt / "gazette-prod") == "/var/lib/tinsnip/gazette-prod/nfs"
    assert not converge(link)  # a second run changes nothing


@root_only
def test_a_wrong_link_is_replaced_not_followed(mnt):
    (mnt / "victim").mkdir()
    (mnt / "gazette-prod").symlink_to(mnt / "victim")
    assert converge(GateLink(str(mnt / "gazette-prod"), "/var/lib/tinsnip/gazette-prod/nfs"))
    assert os.readlink(mnt / "gazette-prod") == "/var/lib/tinsnip/gazette-prod/nfs"
    assert list((mnt / "victim").iterdir()) == []


@root_only
def test_files_left_on_the_host_under_the_old_mount_point_are_kept(mnt):
    (mnt / "gazette-prod").mkdir()
    (mnt / "gazette-prod" / "written-while-unmounted").write_text("x")
    with pytest.raises(StepFailed, match="still holds files with nothing mounted on it"):
        converge(GateLink(str(mnt / "gazette-prod"), "/var/lib/tinsnip/gazette-prod/nfs"))
    assert (mnt / "gazette-prod" / "written-while-unmounted").read_text() == "x"


@root_only
def test_root_does_not_make_the_link_in_a_folder_others_can_write(mnt):
    mnt.chmod(0o777)
    with pytest.raises(StepFailed, match="writable by others than root"):
        converge(GateLink(str(mnt / "gazette-prod"), "/var/lib/tinsnip/gazette-prod/nfs"))
    assert not (mnt / "gazette-prod").exists()


def test_the_old_mount_is_unmounted_before_its_folder_goes():
    link = GateLink("/mnt/gazette-prod", "/var/lib/tinsnip/gazette-prod/nfs")
    cmds = [str(c) for c in link.plan("mounted\nfolder\n")]
    assert cmds == ["umount /mnt/gazette-prod (the export's old place)", "rmdir /mnt/gazette-prod",
                    "ln -sfn /var/lib/tinsnip/gazette-prod/nfs /mnt/gazette-prod"]
    assert link.plan("link\n/var/lib/tinsnip/gazette-prod/nfs\n") == []
    with pytest.raises(ConflictError, match="neither a folder nor a link"):
        link.plan("other\n")


def test_the_daemon_is_stopped_only_for_the_move():
    d = DaemonOffOldMount("gazette-prod", 10100, "/mnt/gazette-prod")
    assert d.plan("init=sshd\nprocs=4\n") == []  # already behind the gate
    assert d.plan("old=yes\ninit=sshd\nprocs=0\n") == []  # nothing runs
    plain = [c.text for c in d.plan("old=yes\ninit=sshd\nprocs=4\n")]
    assert "kill -TERM" in plain[0] and "pgrep -u 10100 -x dockerd" in plain[0]
    assert '$5 != "systemd"' in plain[1]  # the user's systemd instance is not the daemon's
    sd = [c.text for c in d.plan("old=yes\ninit=systemd\nprocs=4\n")]
    assert sd[0].startswith("timeout 60 systemctl --user -M gazette-prod@ stop docker.service")


def test_processes_are_counted_only_where_the_old_mount_is(tmp_path):
    """Listing every process of the host (ps) is kept for a host set up before the gate."""
    bin_dir, called = tmp_path / "bin", tmp_path / "ps-called"
    bin_dir.mkdir()
    (bin_dir / "ps").write_text(f"#!/bin/sh\ntouch {called}\nexec /bin/ps \"$@\"\n")
    (bin_dir / "ps").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "gate").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "gate")
    (tmp_path / "old").mkdir()
    for mount, old in (("link", False), ("old", True)):
        d = DaemonOffOldMount("u", 4244, str(tmp_path / mount))
        out = subprocess.run(["sh", "-c", d.fact_command()], capture_output=True, text=True,
                             env=env).stdout
        assert called.exists() is old and ("old=yes" in out) is old and ("procs=0" in out) is old
        assert f"init={Path('/proc/1/comm').read_text().strip()}" in out


# -- processes -------------------------------------------------------------------------------

UID = 4243  # no account needed: setpriv runs processes as bare UIDs
LO, HI = subid_range(UID)


def _spawn(uid):
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             "sleep", "300"])


def _alive(p):
    return p.poll() is None


@root_only
def test_every_process_of_the_uid_and_its_range_ends_and_no_other():
    own, container, bystander = _spawn(UID), _spawn(LO + 10100), _spawn(HI + 1)
    try:
        time.sleep(0.2)
        listed = subprocess.run(["sh", "-c", pids_of(UID)], capture_output=True, text=True).stdout
        assert {str(own.pid), str(container.pid)} <= set(listed.split())
        assert str(bystander.pid) not in listed.split()
        subprocess.run(["sh", "-c", end_processes(UID, "x-prod")], check=True, timeout=30)
        for p in (own, container):
            p.wait(timeout=5)
        assert _alive(bystander)
    finally:
        for p in (own, container, bystander):
            p.kill()
            p.wait()


@root_only
def test_what_will_not_end_is_named_and_fails():
    survivor = _spawn(LO + 5)
    try:
        time.sleep(0.2)
        # a kill that does nothing stands in for a process that cannot be ended
        p = subprocess.run(["sh", "-c", "kill() { :; }; " + end_processes(UID, "x-prod", kill_after=3)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1
        assert f"processes of x-prod (UID {UID} and subordinate UIDs {LO}-{HI}) still run: " \
               f"{survivor.pid} (sleep, UID {LO + 5})" in p.stderr
    finally:
        survivor.kill()
        survivor.wait()


# -- mount namespaces ------------------------------------------------------------------------

@root_only
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_a_namespace_that_kept_the_export_is_found():
    source = f"tinsnip-test-{os.getpid()}:/volume1/s/m/e"
    script = f"""
# (removing the folder would detach the copy in the other namespace too)
d=$(mktemp -d)
mount -t tmpfs {source} "$d" || exit 77
unshare -m --propagation private sleep 60 & h=$!
sleep 0.5
umount "$d"
echo "holder $h"
{mount_holders(source)}
kill $h
rmdir "$d"
"""
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=30)
    if p.returncode == 77:
        pytest.skip("cannot mount a tmpfs here")
    lines = p.stdout.splitlines()
    holder = lines[0].split()[1]
    found = NowhereMounted(source).parse("\n".join(lines[1:]))
    assert [h[0] for h in found] == [holder] and found[0][1:] == ["0", "sleep"]
    with pytest.raises(LeftBehind, match=f"still mounted in the mount namespace of PID {holder} "
                                            r"\(sleep, UID 0\)"):
        NowhereMounted(source).plan("\n".join(lines[1:]))
    # and afterwards nothing holds it
    gone = subprocess.run(["sh", "-c", mount_holders(source)], capture_output=True, text=True)
    assert gone.stdout == ""


def test_a_digest_is_recorded_once_and_the_oldest_go():
    edit = gate.with_digest("/mnt/x/service/s/.env", "a" * 64, keep=3)
    once = edit("b" * 64 + "  /mnt/x/.machine/machine.env\n")
    assert edit(once) == once  # idempotent: a second run changes nothing
    text = once
    for d in "cdef":
        text = gate.with_digest("/mnt/x/service/s/.env", d * 64, keep=3)(text)
    mine = [l.split()[0][0] for l in text.splitlines() if l.endswith("/s/.env")]
    assert mine == ["d", "e", "f"] and "b" * 64 + "  /mnt/x/.machine/machine.env" in text


def test_a_file_tinsnip_wrote_before_is_sourced_too(mount, tmp_path):
    """A rollback brings back the .env of a kept generation: its digest is still recorded."""
    env = mount / "service" / "hello" / ".env"
    sums = Path(gate.sums_file(str(mount)))
    old = hashlib.sha256(env.read_bytes()).hexdigest()
    env.write_text("HELLO=2\n")
    sums.write_text(gate.with_digest(str(env), hashlib.sha256(b"HELLO=2\n").hexdigest())(
        sums.read_text()))
    assert sourced(mount, tmp_path).stdout.strip() == "ran 10100 2"
    env.write_text("HELLO=1\n")  # the generation before
    assert old in sums.read_text() and sourced(mount, tmp_path).stdout.strip() == "ran 10100 1"
