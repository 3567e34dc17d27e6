"""Resources are pure: facts in, commands out."""
import base64
import hashlib
import subprocess

import pytest

from tinsnip_tasks.errors import ConflictError
from tinsnip_tasks.ops.base import Resource, facts_script, split_facts
from tinsnip_tasks.ops.resources import (
    Directory, Edited, File, Mounted, Symlink, User, field_is, parse_stat, set_line,
)

from local_steps import StepFailed, converge


def texts(cmds):
    return [c.text for c in cmds]


RAW = {"directory": 0o040000, "regular file": 0o100000, "symbolic link": 0o120000}


def stat_out(kind="directory", uid=0, gid=0, mode=0o755):
    """What ``stat -c %f:%u:%g`` prints."""
    return f"{RAW[kind] | mode:x}:{uid}:{gid}"


def test_stat_is_read_as_numbers_in_any_locale():
    assert parse_stat("41ed:0:0") == {"type": "directory", "uid": 0, "gid": 0, "mode": 0o755}
    assert parse_stat("45e8:10100:10100")["mode"] == 0o2750
    assert parse_stat("a1ff:7:7")["type"] == "symbolic link"
    assert parse_stat("81a4:1:2") == {"type": "regular file", "uid": 1, "gid": 2, "mode": 0o644}
    assert parse_stat("missing") is None


class TestDirectory:
    def test_missing_folder_is_made_and_owned_in_one_command(self):
        (cmd,) = Directory("/v/a b", 10100, 10100, 0o750).plan("missing")
        assert "mkdir -p -- '/v/a b'" in cmd.text and "cd -P -- '/v/a b'" in cmd.text
        # owner and mode are set on the folder entered and checked, not through its name
        assert "chown -h 10100:10100 . && chmod 0750 ." in cmd.text
        assert str(cmd) == "make /v/a b owner 10100:10100 mode 0750"

    def test_right_folder_needs_nothing(self):
        d = Directory("/v/a", 10100, 10100, 0o750)
        assert d.plan(stat_out(uid=10100, gid=10100, mode=0o750)) == []

    def test_only_wrong_mode_is_fixed(self):
        (cmd,) = Directory("/v/a", 10100, 10100, 0o750).plan(stat_out(uid=10100, gid=10100, mode=0o777))
        assert cmd.text.endswith("&& chmod 0750 . ); } || exit $?") and "chown" not in cmd.text

    def test_owner_not_managed_when_not_given(self):
        assert Directory("/mnt/x").plan(stat_out(uid=5, gid=5)) == []

    @pytest.mark.parametrize("kind", ["regular file", "symbolic link"])
    def test_anything_but_a_folder_is_refused(self, kind):
        with pytest.raises(ConflictError, match=f"{kind}, not a folder"):
            Directory("/v/a").plan(stat_out(kind=kind))

    def test_a_users_folder_is_made_by_that_user(self):
        (cmd,) = Directory("/home/u/.config", mode=0o755, owner=10100).plan("missing")
        assert cmd.text.startswith("setpriv --reuid=10100 --regid=10100 --clear-groups sh -c ")
        assert Directory("/home/u/.config", owner=10100).fact_command().startswith("setpriv")
        with pytest.raises(ConflictError, match="belongs to UID 0, not 10100"):
            Directory("/home/u/.config", owner=10100).plan(stat_out(uid=0))


class TestFile:
    content = b"A=1\n"

    def fact(self, content=content, mode=0o640, uid=0):
        return f"{stat_out('regular file', uid, uid, mode)}\n{hashlib.sha256(content).hexdigest()}  -"

    def test_same_content_and_mode_needs_nothing(self):
        assert File("/e/x", self.content, mode=0o640).plan(self.fact()) == []

    def test_new_content_goes_to_a_fresh_temporary_file_then_is_renamed(self):
        (cmd,) = File("/e/x", self.content, mode=0o600, secret=True).plan(self.fact(b"A=0\n"))
        first, *rest = cmd.text.splitlines()
        assert "t=$(mktemp ./.x.XXXXXXXXXX)" in first and "mv -fT -- \"$t\" x" in first
        assert "umask 077" in first and "chmod 0600 \"$t\"" in first
        # the content is a here-document, read from the script's stdin, never a word of a command
        encoded = base64.b64encode(self.content).decode()
        assert encoded not in first and encoded in rest[0]
        assert encoded not in str(cmd) and "(secret)" in str(cmd)

    def test_mode_drift_rewrites_a_fresh_copy(self):
        (cmd,) = File("/e/x", self.content, mode=0o640).plan(self.fact(mode=0o644))
        assert "chmod 0640 \"$t\"" in cmd.text and "chmod 0640 /e/x" not in cmd.text

    def test_a_users_file_is_written_by_that_user(self):
        (cmd,) = File("/mnt/m/x", self.content, owner=10100).plan("missing")
        assert cmd.text.startswith("setpriv --reuid=10100 --regid=10100 --clear-groups sh -c ")
        assert "chown" not in cmd.text

    def test_something_else_in_its_place_is_refused(self):
        with pytest.raises(ConflictError, match="symbolic link, not a file"):
            File("/e/x", self.content).plan(stat_out("symbolic link"))

    def test_the_write_really_is_atomic_and_exact(self, tmp_path):
        target = tmp_path / "out file"
        target.write_text("old\n")
        converge(File(str(target), b"new 'quoted' $x\n", mode=0o600))
        assert target.read_bytes() == b"new 'quoted' $x\n"
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        assert [p.name for p in tmp_path.iterdir()] == ["out file"]


class TestEdited:
    def fact(self, text, mode=0o644):
        return f"{stat_out('regular file', mode=mode)}\n" + base64.b64encode(text.encode()).decode()

    def test_line_added_once_and_then_nothing(self):
        line = "nas:/v/g /mnt/g nfs rw 0 0"
        e = Edited("/etc/fstab", set_line(field_is(1, "/mnt/g"), line), "fstab line")
        assert e.plan(self.fact("# fstab\n# tinsnip: /mnt/g\n" + line + "\n")) == []
        cmds = texts(e.plan(self.fact("# fstab\n")))
        assert any("mv -fT -- \"$t\" fstab" in c for c in cmds) and cmds[-1] == "exec 8>&-"

    def test_a_link_in_place_of_the_file_is_refused(self):
        e = Edited("/etc/fstab", set_line(field_is(1, "/mnt/g"), "n:/v /mnt/g nfs rw 0 0"), "line")
        with pytest.raises(ConflictError, match="symbolic link, not a regular file"):
            e.plan(stat_out("symbolic link", mode=0o777))

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

    def test_rollback_puts_the_old_file_back_when_after_fails(self, tmp_path):
        f = tmp_path / "exports"
        f.write_text("/v/ok h(rw)\n")
        e = Edited(str(f), set_line(field_is(0, "/v/new"), "/v/new h(bad)"), "export",
                   after=("false",), rollback=True)
        with pytest.raises(StepFailed):
            converge(e)
        assert f.read_text() == "/v/ok h(rw)\n"
        assert [p.name for p in tmp_path.iterdir() if not p.name.endswith("-lock")] == ["exports"]


class TestSymlink:
    def test_right_link_needs_nothing(self):
        assert Symlink("/h/@g", "/mnt/g/data").plan("link\n/mnt/g/data") == []

    def test_wrong_or_missing_link_is_made(self):
        s = Symlink("/h/@g", "/mnt/g/data", 10100)
        want = ["ln -sfn -- /mnt/g/data /h/@g", "chown -h 10100:10100 -- /h/@g"]
        assert texts(s.plan("link\n/elsewhere")) == want
        assert texts(s.plan("missing")) == want

    def test_a_users_link_is_made_by_that_user(self):
        (cmd,) = Symlink("/h/@g", "/mnt/g/data", owner=10100).plan("missing")
        assert cmd.text.startswith("setpriv --reuid=10100 ") and "ln -sfn -- /mnt/g/data /h/@g" in cmd.text

    def test_real_folder_in_the_way_is_refused(self):
        with pytest.raises(ConflictError):
            Symlink("/h/@g", "/mnt/g").plan("other")


def user_fact(group="", passwd="", sub=""):
    """What :meth:`User.fact_command` prints: getent's lines, then grep -H's."""
    return f"@group\n{group}@passwd\n{passwd}@sub\n{sub}"


class TestUser:
    u = User("gazette-prod", 10100, "/home/gazette-prod", 661913600)
    present = user_fact("gazette-prod:x:10100:\n",
                        "gazette-prod:x:10100:10100::/home/gazette-prod:/bin/bash\n",
                        "/etc/subuid:gazette-prod:661913600:65536\n"
                        "/etc/subgid:gazette-prod:661913600:65536\n")

    def test_new_user(self):
        cmds = self.u.plan(user_fact())
        assert [str(c) for c in cmds] == [
            "lock /etc/passwd.tinsnip-lock",
            "groupadd -g 10100 gazette-prod",
            "useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -u 10100 -g 10100 -m "
            "-d /home/gazette-prod -s /bin/bash gazette-prod",
            "usermod --add-subuids 661913600-661979135 gazette-prod",
            "usermod --add-subgids 661913600-661979135 gazette-prod",
            "check gazette-prod is 10100:10100", "unlock /etc/passwd.tinsnip-lock"]
        # under the lock, each change is made only if another run has not made it meanwhile
        assert texts(cmds)[1] == ("getent group gazette-prod >/dev/null || "
                                  "groupadd -g 10100 gazette-prod")
        assert texts(cmds)[3].startswith("grep -qxF gazette-prod:661913600:65536 /etc/subuid || ")

    def test_existing_user_needs_nothing(self):
        assert self.u.plan(self.present) == []

    def test_extra_subid_line_still_idempotent(self):
        out = self.present.replace("/etc/subuid:gazette-prod:661913600:65536",
                                   "/etc/subuid:gazette-prod:100000:65536\n"
                                   "/etc/subuid:gazette-prod:661913600:65536")
        assert self.u.plan(out) == []

    @pytest.mark.parametrize("fact, message", [
        (user_fact("other:x:10100:\n"), "GID 10100 belongs to group other"),
        (user_fact(passwd="bob:x:10100:10100::/h:/bin/sh\n"), "UID 10100 belongs to user bob"),
        (user_fact("gazette-prod:x:5000:\n"), "exists with GID 5000"),
    ], ids=["gid-taken", "uid-taken", "group-other-gid"])
    def test_conflicts_are_refused(self, fact, message):
        with pytest.raises(ConflictError, match=message):
            self.u.plan(fact)

    def test_the_fact_reads_the_accounts_by_name_and_by_number(self):
        """On this machine, root is user and group 0 under both keys."""
        out = subprocess.run(["sh", "-c", User("root", 0, "/root", 1).fact_command()],
                             capture_output=True, text=True).stdout
        fact = User("root", 0, "/root", 1).parse(out)
        assert fact["G"] == fact["GU"] and fact["G"].startswith("root:x:0:")
        assert fact["P"] == fact["PU"] and fact["P"].startswith("root:x:0:0:")
        other = User("root", 1, "/root", 1).parse(out.replace("root:x:0:", "daemon:x:1:", 1))
        assert other["GU"].startswith("daemon:x:1:") and other["G"].startswith("root:")


    def test_the_accounts_of_a_host_are_read_by_one_script_each_taking_its_own(self, tmp_path):
        """Two accounts of one host: one getent of each kind and one grep for both, run here
        against subordinate ranges of both; each resource finds its own lines only."""
        root, daemon = User("root", 0, "/root", 1), User("daemon", 1, "/", 1)
        script = facts_script([root, daemon])
        assert script.count("getent passwd") == 1 and "@@tinsnip-fact:1=0" in script
        sub = tmp_path / "sub"
        sub.write_text("root:100000:65536\ndaemon:165536:65536\n")
        script = script.replace("/etc/subuid", str(sub))
        out = split_facts(subprocess.run(["sh", "-c", script], capture_output=True, text=True)
                          .stdout.replace(str(sub), "/etc/subuid"), 2)
        mine, its = root.parse(out[0]), daemon.parse(out[1])
        assert mine["P"].startswith("root:x:0:0:") and its["P"].startswith("daemon:x:1:1:")
        assert mine["SU"] == "root:100000:65536" and its["SU"] == "daemon:165536:65536"


class TestMountedOn:
    def test_the_mount_on_a_path_is_read_from_proc_mounts(self):
        """Read for real by the shell alone: /proc is mounted here, / of it is not a mount."""
        def fact(path):
            out = subprocess.run(["sh", "-c", Mounted(path, "nas:/v").fact_command()],
                                 capture_output=True, text=True).stdout
            return Mounted(path, "nas:/v").parse(out)
        assert fact("/proc") == ["proc", "proc"]
        assert fact("/proc/self") is None


class TestMounted:
    m = Mounted("/mnt/g", "nas:/v/g")

    def test_unmounted_is_mounted_through_fstab(self):
        (cmd,) = self.m.plan("")
        assert str(cmd) == "mount /mnt/g"
        # a concurrent run that mounted the same source first is not a failure
        assert cmd.text.startswith("mount /mnt/g || awk -v m=/mnt/g -v s=nas:/v/g ")

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
    assert "mv -fT" in texts(File(str(tmp_path / "f"), b"y").plan(parts[2]))[-1]


def test_a_facts_script_gives_its_output_in_one_piece_at_its_end():
    """Line by line, every fact's output would leave the host as SSH packets of its own."""
    import os

    class Slow(Resource):
        def __init__(self, word):
            self.word = word

        def fact_command(self):
            return f"echo {self.word}; sleep 0.3; echo after"

    p = subprocess.Popen(["sh", "-c", facts_script([Slow("a"), Slow("b")])],
                         stdout=subprocess.PIPE)
    first = os.read(p.stdout.fileno(), 1 << 16)
    rest = p.stdout.read()
    p.wait()
    assert first.count(b"after") == 2 and rest == b""
    assert split_facts((first + rest).decode(), 2) == ["a\nafter", "b\nafter"]


def test_a_fact_two_resources_read_alike_is_read_once_for_both(tmp_path):
    """service.generation and service.up read one fact of the service: it runs once."""
    class Counted(Resource):
        def __init__(self, word):
            self.word = word

        def fact_command(self):
            return f"echo {self.word}; echo x >> {tmp_path}/reads"

    rs = [Counted("same"), Counted("other"), Counted("same")]
    out = subprocess.run(["sh", "-c", facts_script(rs)], capture_output=True, text=True).stdout
    assert split_facts(out, 3) == ["same", "other", "same"]
    assert (tmp_path / "reads").read_text() == "x\nx\n"


def test_facts_read_as_one_user_run_in_one_process_of_that_user(tmp_path):
    """Facts read as the same user share one setpriv (and shell), wherever they are in the
    list; each fact reads what it reads alone, the root facts stay outside."""
    import os

    uid = os.getuid()
    (tmp_path / "f").write_text("x")
    (tmp_path / "f").chmod(0o644)
    rs = [Directory(str(tmp_path), owner=uid), Symlink(str(tmp_path / "l"), "/x", owner=uid),
          File(str(tmp_path / "f"), b"x", owner=uid), Directory(str(tmp_path / "nope")),
          Directory(str(tmp_path / "nope"), owner=uid)]
    script = facts_script(rs)
    assert script.count("setpriv") == 1  # the four owned facts, the root one apart
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
    alone = [subprocess.run(["sh", "-c", r.fact_command()], capture_output=True,
                            text=True).stdout.rstrip("\n") for r in rs]
    assert split_facts(out, len(rs)) == alone
    assert parse_stat(alone[0])["type"] == "directory" and alone[1] == "missing"
    assert rs[2].plan(alone[2]) == []


def test_the_stat_lines_of_many_folders_come_from_one_stat(tmp_path):
    """Awkward names too: each folder gets the line its own stat would give, or missing."""
    names = ["plain", "with space", "it's", "a|b", "star*", "missing one"]
    for n in names[:-1]:
        (tmp_path / n).mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "plain")
    rs = [Directory(str(tmp_path / n)) for n in names + ["file", "link"]]
    rs.insert(2, File(str(tmp_path / "file"), b"x"))  # a fact of another kind in between
    rs.insert(4, Directory(str(tmp_path / "plain")))  # one folder of two steps
    script = facts_script(rs)
    assert script.count("stat -c '%f:%u:%g|%n|%N'") == 1
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
    alone = [subprocess.run(["sh", "-c", r.fact_command()], capture_output=True,
                            text=True).stdout.rstrip("\n") for r in rs]
    assert split_facts(out, len(rs)) == alone
    assert alone[-3] == "missing" and parse_stat(alone[-1])["type"] == "symbolic link"


def test_links_and_files_come_from_the_same_stat_and_one_sha256sum(tmp_path):
    """Each link and file fact, read with the folders', is what its own script prints: a
    link as wanted, to elsewhere, missing, or a folder; a file as wanted, different (read for
    the diff), missing, a link, a folder, a secret file; one file of two steps."""
    t = tmp_path
    (t / "d").mkdir()
    (t / "f").write_text("x")
    (t / "g").write_text("old\n")
    (t / "e").write_text("A=1\nB=secret\n")
    for name, target in (("ok", "/mnt/x/data"), ("elsewhere", "/mnt/y"), ("to-f", str(t / "f"))):
        (t / name).symlink_to(target)
    rs = [Directory(str(t / "d")), Symlink(str(t / "ok"), "/mnt/x/data"),
          Symlink(str(t / "elsewhere"), "/mnt/x/data"), Symlink(str(t / "none"), "/a"),
          Symlink(str(t / "d"), "/a"), File(str(t / "f"), b"x"), File(str(t / "g"), b"new\n"),
          File(str(t / "nofile"), b"x"), File(str(t / "to-f"), b"x"), File(str(t / "d"), b"x"),
          File(str(t / "e"), b"A=1\n", secret=True, public=("A",)), File(str(t / "f"), b"y")]
    script = facts_script(rs)
    assert script.count("stat -c") == 1 and script.count("sha256sum") == 1
    assert "readlink" not in script
    out = split_facts(subprocess.run(["sh", "-c", script], capture_output=True,
                                     text=True).stdout, len(rs))
    alone = [subprocess.run(["sh", "-c", r.fact_command()], capture_output=True,
                            text=True).stdout.rstrip("\n") for r in rs]
    assert out == alone
    assert [r.plan(o) == [] for r, o in zip(rs[:3], out)] == [True, True, False]
    assert "-old\n+new" in rs[6].diff(out[6])
    with pytest.raises(ConflictError):
        rs[8].plan(out[8])  # a link where a file should be is refused, as before


def test_edited_files_come_from_the_same_stat_each_read_once(tmp_path):
    """Files edited in place (/etc/fstab, the digests behind a gate) read with the folders: the
    same output as each one's own script, a file several steps edit read once."""
    t = tmp_path
    (t / "d").mkdir()
    (t / "fstab").write_bytes(b"a b\n\xff\n")
    (t / "exports").write_text("x\n")
    (t / ".exports.tinsnip-applied").write_text("abc\n")
    (t / "to-fstab").symlink_to(t / "fstab")
    keep = lambda text: text  # noqa: E731 - an edit that changes nothing
    rs = [Directory(str(t / "d")), Edited(str(t / "fstab"), keep, "line"),
          Edited(str(t / "fstab"), keep, "other line"),
          Edited(str(t / "exports"), keep, "export", applied=True),
          Edited(str(t / "none"), keep, "line"), Edited(str(t / "to-fstab"), keep, "line"),
          Edited(str(t / "d"), keep, "line")]
    script = facts_script(rs)
    assert script.count("stat -c") == 1 and script.count("base64 <") == 5  # fstab once
    assert "@@tinsnip-fact:2=1" in script
    out = split_facts(subprocess.run(["sh", "-c", script], capture_output=True,
                                     text=True).stdout, len(rs))
    alone = [subprocess.run(["sh", "-c", r.fact_command()], capture_output=True,
                            text=True).stdout.rstrip("\n") for r in rs]
    assert out == alone
    assert rs[1].parse(out[1])["raw"] == b"a b\n\xff\n"
    assert rs[3].parse(out[3])["applied"] == "abc"


def test_a_link_target_with_a_newline_is_read_escaped_and_never_taken_for_the_wanted(tmp_path):
    (tmp_path / "l").symlink_to("/mnt/x\n/mnt/x")
    rs = [Directory(str(tmp_path)), Symlink(str(tmp_path / "l"), "/mnt/x")]
    out = split_facts(subprocess.run(["sh", "-c", facts_script(rs)], capture_output=True,
                                     text=True).stdout, 2)
    alone = subprocess.run(["sh", "-c", rs[1].fact_command()], capture_output=True,
                           text=True).stdout.rstrip("\n")
    assert out[1] == alone == "link\n/mnt/x\\n/mnt/x" and rs[1].plan(out[1]) != []


def test_a_file_is_read_whole_only_when_it_is_not_the_content_wanted(tmp_path):
    """A no-op run reads the file's digest; its content only for the diff of a change."""
    from tinsnip_tasks.ops.resources import NOW

    f = tmp_path / "f"
    f.write_text("old\n")
    same, other = File(str(f), b"old\n"), File(str(f), b"new\n")

    def fact(r):
        return subprocess.run(["sh", "-c", r.fact_command()], capture_output=True,
                              text=True).stdout

    assert fact(same).endswith(NOW + "\n")  # nothing after the marker
    assert same.plan(fact(same)) == [] and same.diff(fact(same)) == ""
    assert "-old\n+new" in other.diff(fact(other))
    assert "mv -fT" in texts(other.plan(fact(other)))[-1]


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
    assert f.read_text() == "/v/a h(rw)\n/v/c h(rw)\n# tinsnip: /v/b\n/v/b h(rw)\n"
