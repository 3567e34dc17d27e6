"""Nothing root does follows a link it did not make: the generated scripts run here, as root, on
scratch trees where an unprivileged user (UID 4242, no account needed) planted links first.

Each test fails on a writer that uses a fixed temporary name, ``>`` onto a path the user
controls, ``chown``/``chmod`` through a name, or root writing in the user's folders.
"""
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from invoke import Context

from tinsnip_tasks.errors import RemoteError
from tinsnip_tasks.ops import base
from tinsnip_tasks.ops.base import Cmd, Host, Resource
from tinsnip_tasks.ops.resources import (
    Directory, Edited, File, ForeignLine, Symlink, drop_lines, field_is, set_line,
)

from local_steps import StepFailed, converge

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs scripts as root and as UID 4242")
U = 4242


def as_user(*argv):
    return subprocess.run(["setpriv", f"--reuid={U}", f"--regid={U}", "--clear-groups", *argv],
                          check=True)


@pytest.fixture
def tree():
    """A folder everyone can reach, with a root-owned victim file and folder beside it."""
    d = Path(tempfile.mkdtemp(dir="/tmp", prefix="tinsnip-links-"))
    d.chmod(0o755)
    (d / "victim").write_text("root's\n")
    (d / "victim").chmod(0o644)
    (d / "victimdir").mkdir(mode=0o755)
    yield d
    shutil.rmtree(d)


def unchanged(tree):
    v, vd = (tree / "victim").stat(), (tree / "victimdir").stat()
    return ((tree / "victim").read_text(), v.st_uid, v.st_mode, vd.st_uid, vd.st_mode) == \
        ("root's\n", 0, stat.S_IFREG | 0o644, 0, stat.S_IFDIR | 0o755)


def users_folder(tree, name="home"):
    d = tree / name
    d.mkdir()
    os.chown(d, U, U)
    return d


# -- File --------------------------------------------------------------------------------------

def test_root_write_does_not_follow_links_at_temporary_names(tree):
    etc = tree / "etc"
    etc.mkdir(mode=0o755)
    for name in (".x.tinsnip-new", ".x.tmp", ".x.XXXXXXXXXX", ".x.old"):
        (etc / name).symlink_to(tree / "victim")
    converge(File(str(etc / "x"), b"new\n", uid=7, gid=8, mode=0o640))
    st = (etc / "x").stat(follow_symlinks=False)
    assert (etc / "x").read_bytes() == b"new\n" and stat.S_ISREG(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o640)
    assert unchanged(tree)


def test_root_does_not_write_into_a_folder_others_can_write(tree):
    shared = tree / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StepFailed, match="root does not write there"):
        converge(File(str(shared / "x"), b"new\n"))
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("owner, allowed", [(0, True), (10000, True), (20010, True),
                                            (10100, False), (U, False)])
def test_root_writes_only_where_root_or_a_station_owns_the_folder(tree, owner, allowed):
    """A station's folder (machine 00) is exported read-only; any other UID's folder can be
    changed by that UID (on the NAS, through its read-write export)."""
    d = tree / "folder"
    d.mkdir(mode=0o755)
    os.chown(d, owner, owner)
    f = Edited(str(d / "machine-registry"), lambda text: "gazette=01\n", "registry")
    if allowed:
        assert converge(f) is True
    else:
        with pytest.raises(StepFailed, match="root does not write there"):
            converge(f)
        assert list(d.iterdir()) == []


def test_a_users_file_is_written_by_the_user_whatever_links_it_planted(tree):
    home = users_folder(tree)
    for name in (".env.tinsnip-new", ".env.AAAAAAAAAA"):
        as_user("ln", "-s", str(tree / "victim"), str(home / name))
    f = File(str(home / ".env"), b"A=1\n", mode=0o600, owner=U, secret=True)
    converge(f)
    st = (home / ".env").stat(follow_symlinks=False)
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (U, 0o600)
    assert (home / ".env").read_bytes() == b"A=1\n"
    as_user("ln", "-sfn", str(tree / "victim"), str(home / ".env"))  # the file itself a link
    with pytest.raises(StepFailed, match="symbolic link, not a file"):
        converge(f)
    assert unchanged(tree)


def test_a_folder_link_around_a_users_file_leads_only_where_the_user_may_write(tree):
    home = users_folder(tree)
    as_user("ln", "-s", str(tree / "victimdir"), str(home / ".machine"))
    with pytest.raises(StepFailed):
        converge(File(str(home / ".machine" / "machine.env"), b"X=1\n", owner=U))
    assert list((tree / "victimdir").iterdir()) == [] and unchanged(tree)


# -- Directory ---------------------------------------------------------------------------------

def test_root_chowns_the_folder_it_checked_not_a_link_swapped_in_after_the_fact(tree):
    """The fact is read, then the user swaps the folder for a link before the change runs."""
    export = users_folder(tree, "export")
    d = Directory(str(export / "state"), 10100, 10100, 0o750)
    as_user("mkdir", str(export / "state"))
    h = Host("local", Context())
    (fact,) = h.read([d], step="s")
    cmds = d.plan(fact)
    as_user("sh", "-c", f"rmdir {export}/state && ln -s {tree}/victimdir {export}/state")
    with pytest.raises(RemoteError, match="not a folder of its own"):
        h.run("set -e\n" + "\n".join(c.text for c in cmds), step="s")
    assert unchanged(tree)


def test_a_link_where_a_folder_belongs_is_refused(tree):
    (tree / "state").symlink_to(tree / "victimdir")
    with pytest.raises(StepFailed, match="symbolic link, not a folder"):
        converge(Directory(str(tree / "state"), 10100, 10100, 0o750))
    assert unchanged(tree)


def test_a_users_folders_and_links_are_made_by_the_user(tree):
    home = users_folder(tree)
    converge(Directory(str(home / ".config"), mode=0o755, owner=U),
             Directory(str(home / ".config" / "sheet"), mode=0o755, owner=U),
             Symlink(str(home / ".config" / "sheet" / "@m"), "/mnt/m/config", owner=U))
    for p in (home / ".config", home / ".config" / "sheet", home / ".config" / "sheet" / "@m"):
        assert os.lstat(p).st_uid == U
    assert os.readlink(home / ".config" / "sheet" / "@m") == "/mnt/m/config"


# -- Edited ------------------------------------------------------------------------------------

def exports_in(tree, text=b"/v/a h(rw)\n", mode=0o640):
    etc = tree / "etc"
    etc.mkdir(mode=0o755, exist_ok=True)
    f = etc / "exports"
    f.write_bytes(text)
    f.chmod(mode)
    os.chown(f, 0, 27)
    return f


def test_a_linked_exports_file_is_refused_never_replaced(tree):
    etc = tree / "etc"
    etc.mkdir(mode=0o755)
    (etc / "exports").symlink_to(tree / "victim")
    e = Edited(str(etc / "exports"), set_line(field_is(0, "/v/b"), "/v/b h(rw)"), "export")
    with pytest.raises(StepFailed, match="symbolic link, not a regular file"):
        converge(e)
    assert (etc / "exports").is_symlink() and unchanged(tree)


def test_owner_group_and_mode_of_an_edited_file_are_kept_exactly(tree):
    f = exports_in(tree, mode=0o2640)
    converge(Edited(str(f), set_line(field_is(0, "/v/b"), "/v/b h(rw)"), "export"))
    st = f.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 27, 0o2640)
    assert f.read_text().endswith("# tinsnip: /v/b\n/v/b h(rw)\n")


def test_bytes_that_are_not_utf8_survive_an_edit(tree):
    f = exports_in(tree, b"# caf\xe9 \xff\n/v/a h(rw)\n")
    converge(Edited(str(f), set_line(field_is(0, "/v/b"), "/v/b h(rw)"), "export"))
    assert f.read_bytes() == b"# caf\xe9 \xff\n/v/a h(rw)\n# tinsnip: /v/b\n/v/b h(rw)\n"


def test_after_is_run_again_until_it_succeeds(tree):
    """exportfs -ra killed or refused once: the next run runs it again, not only on a change."""
    f = exports_in(tree)
    ok, runs = tree / "exportfs-works", tree / "runs"
    after = f"echo x >> {runs} && test -e {ok}"
    e = Edited(str(f), set_line(field_is(0, "/v/b"), "/v/b h(rw)"), "export", after=(after,),
               applied=True)
    with pytest.raises(StepFailed):
        converge(e)  # the file changes, the after step fails
    with pytest.raises(StepFailed):
        converge(e)  # the file is as wanted, but after has not succeeded on it yet
    ok.touch()
    assert converge(e) is True
    assert converge(e) is False  # applied: nothing more to do
    assert runs.read_text().count("x") == 3


def test_a_failed_after_puts_the_old_file_back_and_leaves_no_copy(tree):
    f = exports_in(tree)
    e = Edited(str(f), set_line(field_is(0, "/v/b"), "/v/b h(bad)"), "export", after=("false",),
               rollback=True, applied=True)
    with pytest.raises(StepFailed):
        converge(e)
    assert f.read_bytes() == b"/v/a h(rw)\n"
    assert sorted(p.name for p in f.parent.iterdir()) == ["exports", "exports.tinsnip-lock"]


# -- lines that belong to someone else ---------------------------------------------------------

FSTAB = "/mnt/g"
MINE = "nas:/v/g /mnt/g nfs rw 0 0"


@pytest.mark.parametrize("foreign", [
    "other:/x /mnt/g nfs ro 0 0",
    "other:/x /mnt/g/ nfs ro 0 0",
    'other:/x "/mnt/g" nfs ro 0 0',
    "other:/x /mnt//g nfs ro 0 0",
    "other:/x \\\n  /mnt/g nfs ro 0 0",
], ids=["same", "trailing-slash", "quoted", "double-slash", "continued"])
def test_someone_elses_line_for_the_same_mount_point_is_a_conflict(foreign):
    with pytest.raises(ForeignLine, match="/mnt/g too and tinsnip did not write it"):
        set_line(field_is(1, FSTAB), MINE)(f"# fstab\n{foreign}\n")
    # removing the mount point removes the line, however it is spelled
    assert drop_lines(field_is(1, FSTAB))(f"# fstab\n{foreign}\n") == "# fstab\n"


def test_an_export_with_a_space_in_quotes_or_escaped_is_the_same_path():
    match = field_is(0, "/v/my share")
    assert match('"/v/my share" h(rw)') and match("/v/my\\040share/ h(rw)")
    assert not match("/v/my h(rw)")


def test_tinsnips_own_line_is_updated_in_place_and_others_kept_byte_for_byte():
    text = f"a:/x /mnt/a nfs rw 0 0\n# tinsnip: {FSTAB}\nold:/v/g /mnt/g nfs ro 0 0\n" \
           "b:/y /mnt/b nfs  rw  0 0\n"
    assert set_line(field_is(1, FSTAB), MINE)(text) == (
        f"a:/x /mnt/a nfs rw 0 0\n# tinsnip: {FSTAB}\n{MINE}\nb:/y /mnt/b nfs  rw  0 0\n")
    assert drop_lines(field_is(1, FSTAB))(text) == "a:/x /mnt/a nfs rw 0 0\nb:/y /mnt/b nfs  rw  0 0\n"


def test_a_line_exactly_as_tinsnip_writes_it_is_adopted():
    assert set_line(field_is(1, FSTAB), MINE)(MINE + "\n") == f"# tinsnip: {FSTAB}\n{MINE}\n"


def test_a_foreign_line_fails_the_step_naming_it(tree):
    f = exports_in(tree, b"/v/b other(rw)\n")
    with pytest.raises(StepFailed, match="'/v/b other\\(rw\\)' is for /v/b too"):
        converge(Edited(str(f), set_line(field_is(0, "/v/b"), "/v/b h(rw)"), "export"))
    assert f.read_bytes() == b"/v/b other(rw)\n"


# -- odd answers and concurrent edits ----------------------------------------------------------

class Odd(Resource):
    """A resource whose host answers with bytes its parser cannot read."""

    def describe(self):
        return "odd thing"

    def fact_command(self):
        return "printf 'x\\377\\n'"

    def parse(self, out):
        return int(out)

    def commands(self, fact):
        return []


def test_output_the_parser_cannot_read_is_a_failed_step_naming_host_and_step():
    with pytest.raises(StepFailed, match=r"local: step 'odd.step' failed: cannot read the state "
                                        r"of odd thing: ValueError"):
        converge(Odd(), step="odd.step")


class Busy(Resource):
    """A file another run edits meanwhile: the change exits 75 the first ``n`` times."""

    def __init__(self, counter, n):
        self.counter, self.n = counter, n

    def describe(self):
        return "busy file"

    def fact_command(self):
        return "true"

    def commands(self, fact):
        c = self.counter
        return [Cmd(f"echo x >> {c}; [ $(wc -l < {c}) -gt {self.n} ] || exit 75")]


def test_concurrent_edits_are_retried_with_growing_waits(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(base, "sleep", waits.append)
    assert converge(Busy(tmp_path / "n", 5)) is True
    assert len(waits) == 5
    assert all(0.5 * min(3.0, 0.1 * 2 ** i) <= w <= min(3.0, 0.1 * 2 ** i)
               for i, w in enumerate(waits))
    assert sum(waits) >= 0.5 * (0.1 + 0.2 + 0.4 + 0.8 + 1.6)
