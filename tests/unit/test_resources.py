"""Resources are pure: facts in, commands out."""
import base64
import hashlib
import subprocess

import pytest

from tinsnip_tasks.errors import ConflictError
from tinsnip_tasks.ops.base import facts_script, split_facts
from tinsnip_tasks.ops.resources import (
    Directory, Edited, File, Mounted, Symlink, User, field_is, parse_stat, set_line,
)


def texts(cmds):
    return [c.text for c in cmds]


def stat_out(kind="directory", uid=0, gid=0, mode="755"):
    return f"{kind}:{uid}:{gid}:{mode}"


class TestDirectory:
    def test_missing_folder_is_made_with_owner_and_mode(self):
        d = Directory("/v/a b", 10100, 10100, 0o750)
        assert texts(d.plan("missing")) == [
            "mkdir -p '/v/a b'", "chown 10100:10100 '/v/a b'", "chmod 750 '/v/a b'"]

    def test_right_folder_needs_nothing(self):
        d = Directory("/v/a", 10100, 10100, 0o750)
        assert d.plan(stat_out(uid=10100, gid=10100, mode="750")) == []

    def test_only_wrong_mode_is_fixed(self):
        d = Directory("/v/a", 10100, 10100, 0o750)
        assert texts(d.plan(stat_out(uid=10100, gid=10100, mode="777"))) == ["chmod 750 /v/a"]

    def test_owner_not_managed_when_not_given(self):
        assert Directory("/mnt/x").plan(stat_out(uid=5, gid=5)) == []

    def test_a_file_where_a_folder_belongs_is_refused(self):
        with pytest.raises(ConflictError, match="regular file, not a folder"):
            Directory("/v/a").plan(stat_out(kind="regular file"))


class TestFile:
    content = b"A=1\n"

    def fact(self, content=content, mode="640", uid=0):
        return f"regular file:{uid}:{uid}:{mode}\n{hashlib.sha256(content).hexdigest()}  -"

    def test_same_content_and_mode_needs_nothing(self):
        assert File("/e/x", self.content, mode=0o640).plan(self.fact()) == []

    def test_new_content_is_written_beside_and_renamed(self):
        cmds = File("/e/x", self.content, mode=0o600, secret=True).plan(self.fact(b"A=0\n"))
        t = texts(cmds)
        assert t[-1] == "mv -f /e/.x.tinsnip-new /e/x"
        assert "umask 077" in t[0] and base64.b64encode(self.content).decode() in t[0]
        assert "chmod 600 /e/.x.tinsnip-new" in t
        # what a person sees never holds the content
        assert all(base64.b64encode(self.content).decode() not in str(c) for c in cmds)
        assert "(secret)" in str(cmds[0])

    def test_mode_drift_only_chmods(self):
        assert texts(File("/e/x", self.content, mode=0o640).plan(self.fact(mode="644"))) == [
            "chmod 640 /e/x"]

    def test_the_write_really_is_atomic_and_exact(self, tmp_path):
        target = tmp_path / "out file"
        target.write_text("old\n")
        f = File(str(target), b"new 'quoted' $x\n", mode=0o600)
        subprocess.run(["sh", "-c", "set -e\n" + "\n".join(texts(f.plan("missing")))], check=True)
        assert target.read_bytes() == b"new 'quoted' $x\n"
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        assert not list(tmp_path.glob(".*tinsnip-new"))


class TestEdited:
    def fact(self, text, mode="644"):
        return f"regular file:0:0:{mode}\n" + base64.b64encode(text.encode()).decode()

    def test_line_added_once_and_then_nothing(self):
        line = "nas:/v/g /mnt/g nfs rw 0 0"
        e = Edited("/etc/fstab", set_line(field_is(1, "/mnt/g"), line), "fstab line")
        assert e.plan(self.fact("# fstab\n" + line + "\n")) == []
        cmds = texts(e.plan(self.fact("# fstab\n")))
        assert "mv -f /etc/.fstab.tinsnip-new /etc/fstab" in cmds and cmds[-1] == "exec 8>&-"

    def test_processes_started_later_do_not_keep_the_lock(self, tmp_path):
        """A daemon started after the edit (say mount.nfs, ganesha) must not hold the lock."""
        f = tmp_path / "fstab"
        e = Edited(str(f), set_line(field_is(1, "/mnt/g"), "n:/v /mnt/g nfs rw 0 0"), "line",
                   after=("(sleep 30 &)",))
        fact = subprocess.run(["sh", "-c", e.fact_command()], capture_output=True, text=True).stdout
        script = "set -e\n" + "\n".join(texts(e.plan(fact))) + "\n(sleep 30 &)"
        subprocess.run(["bash", "-c", script], check=True, timeout=10)
        free = subprocess.run(["flock", "-n", str(f) + ".tinsnip-lock", "true"])
        subprocess.run(["pkill", "-f", "sleep 30"])
        assert free.returncode == 0

    def test_changed_line_is_replaced_not_duplicated(self):
        edit = set_line(field_is(0, "/v/a"), "/v/a h(rw)")
        assert edit("/v/a old(ro)\n/v/b x(rw)\n/v/a dup(rw)\n") == "/v/a h(rw)\n/v/b x(rw)\n"

    def test_comments_are_not_matched(self):
        edit = set_line(field_is(0, "/v/a"), "/v/a h(rw)")
        assert edit("#/v/a old\n") == "#/v/a old\n/v/a h(rw)\n"

    def test_rollback_puts_the_old_file_back_when_after_fails(self, tmp_path):
        f = tmp_path / "exports"
        f.write_text("/v/ok h(rw)\n")
        e = Edited(str(f), set_line(field_is(0, "/v/new"), "/v/new h(bad)"), "export",
                   after=("false",), rollback=True)
        fact = subprocess.run(["sh", "-c", e.fact_command()], capture_output=True, text=True).stdout
        script = "set -e\n" + "\n".join(texts(e.plan(fact)))
        assert subprocess.run(["sh", "-c", script]).returncode != 0
        assert f.read_text() == "/v/ok h(rw)\n"


class TestSymlink:
    def test_right_link_needs_nothing(self):
        assert Symlink("/h/@g", "/mnt/g/data").plan("link\n/mnt/g/data") == []

    def test_wrong_or_missing_link_is_made(self):
        s = Symlink("/h/@g", "/mnt/g/data", 10100)
        want = ["ln -sfn /mnt/g/data /h/@g", "chown -h 10100:10100 /h/@g"]
        assert texts(s.plan("link\n/elsewhere")) == want
        assert texts(s.plan("missing")) == want

    def test_real_folder_in_the_way_is_refused(self):
        with pytest.raises(ConflictError):
            Symlink("/h/@g", "/mnt/g").plan("other")


class TestUser:
    u = User("gazette-prod", 10100, "/home/gazette-prod", 661913600)
    present = ("G=gazette-prod:x:10100:\nGU=gazette-prod:x:10100:\n"
               "P=gazette-prod:x:10100:10100::/home/gazette-prod:/bin/bash\n"
               "PU=gazette-prod:x:10100:10100::/home/gazette-prod:/bin/bash\n"
               "SU=gazette-prod:661913600:65536\nSG=gazette-prod:661913600:65536\n")

    def test_new_user(self):
        assert texts(self.u.plan("G=\nGU=\nP=\nPU=\nSU=\nSG=\n")) == [
            "groupadd -g 10100 gazette-prod",
            "useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -u 10100 -g 10100 -m "
            "-d /home/gazette-prod -s /bin/bash gazette-prod",
            "usermod --add-subuids 661913600-661979135 gazette-prod",
            "usermod --add-subgids 661913600-661979135 gazette-prod"]

    def test_existing_user_needs_nothing(self):
        assert self.u.plan(self.present) == []

    def test_extra_subid_line_still_idempotent(self):
        out = self.present.replace("SU=gazette-prod:661913600:65536",
                                   "SU=gazette-prod:100000:65536 gazette-prod:661913600:65536")
        assert self.u.plan(out) == []

    @pytest.mark.parametrize("fact, message", [
        ("G=\nGU=other:x:10100:\nP=\nPU=\nSU=\nSG=\n", "GID 10100 belongs to group other"),
        ("G=\nGU=\nP=\nPU=bob:x:10100:10100::/h:/bin/sh\nSU=\nSG=\n", "UID 10100 belongs to user bob"),
        ("G=gazette-prod:x:5000:\nGU=\nP=\nPU=\nSU=\nSG=\n", "exists with GID 5000"),
    ], ids=["gid-taken", "uid-taken", "group-other-gid"])
    def test_conflicts_are_refused(self, fact, message):
        with pytest.raises(ConflictError, match=message):
            self.u.plan(fact)


class TestMounted:
    m = Mounted("/mnt/g", "nas:/v/g")

    def test_unmounted_is_mounted_through_fstab(self):
        assert texts(self.m.plan("")) == ["mount /mnt/g"]

    def test_mounted_needs_nothing(self):
        assert self.m.plan("nas:/v/g fuse.nfs") == []

    def test_other_source_is_refused(self):
        with pytest.raises(ConflictError, match="other:/x"):
            self.m.plan("other:/x nfs")


def test_fact_script_runs_every_fact_in_one_shell_and_splits_back(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "f").chmod(0o644)
    rs = [Directory(str(tmp_path)), Directory(str(tmp_path / "nope")), File(str(tmp_path / "f"), b"x")]
    out = subprocess.run(["sh", "-c", facts_script(rs)], capture_output=True, text=True).stdout
    parts = split_facts(out, 3)
    assert parse_stat(parts[0])["type"] == "directory"
    assert parse_stat(parts[1]) is None
    assert rs[2].plan(parts[2]) == []
    assert texts(File(str(tmp_path / "f"), b"y").plan(parts[2]))[-1].startswith("mv -f")


def test_edit_refuses_a_file_changed_since_its_fact_was_read(tmp_path):
    """Two runs editing /etc/exports at once: the later writer notices and asks to re-read."""
    f = tmp_path / "exports"
    f.write_text("/v/a h(rw)\n")
    e = Edited(str(f), set_line(field_is(0, "/v/b"), "/v/b h(rw)"), "export")
    fact = subprocess.run(["sh", "-c", e.fact_command()], capture_output=True, text=True).stdout
    f.write_text("/v/a h(rw)\n/v/c h(rw)\n")  # someone else's edit lands in between
    script = "set -e\n" + "\n".join(texts(e.plan(fact)))
    assert subprocess.run(["bash", "-c", script]).returncode == 75
    assert f.read_text() == "/v/a h(rw)\n/v/c h(rw)\n"
    fact = subprocess.run(["sh", "-c", e.fact_command()], capture_output=True, text=True).stdout
    subprocess.run(["bash", "-c", "set -e\n" + "\n".join(texts(e.plan(fact)))], check=True)
    assert f.read_text() == "/v/a h(rw)\n/v/c h(rw)\n/v/b h(rw)\n"
