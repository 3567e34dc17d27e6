"""Host.converge with Invoke's local runner in place of SSH: the generated scripts really run,
on a temporary folder. Facts of every step in one command, changes in one more; steps that
depend on a changed step are read again; failures are labelled with host and step."""
import json
from dataclasses import dataclass

from invoke import Context

from tinsnip_tasks.errors import ConflictError
from tinsnip_tasks.ops.base import Host, Resource, Step, q
from tinsnip_tasks.ops.resources import Directory, Edited, File, set_line, field_is
from tinsnip_tasks.results import (EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK,
                                   EXIT_UNREACHABLE, GroupResult, HostResult, StepResult,
                                   recap_line)


def host(dry=False):
    return Host("box", Context(), dry=dry)


def statuses(h):
    return [(s.step, s.status) for s in h.result.steps]


def steps(tmp):
    """``b`` (a file inside ``a``) needs ``a`` (the folder), like machine.env needs the mount."""
    return [Step("a", (Directory(f"{tmp}/a", mode=0o750),), scope="x"),
            Step("other", (Directory(f"{tmp}/o"),), scope="x"),
            Step("b", (File(f"{tmp}/a/f", b"hi\n", mode=0o600),), scope="x", needs=("a",))]


def test_first_run_reads_again_only_what_depends_on_a_change(tmp_path):
    h = host()
    assert h.converge(steps(tmp_path)) is True
    # read all, apply a + other; read b again (it needs a), apply b
    assert h.commands == 4
    assert statuses(h) == [("a", "changed"), ("other", "changed"), ("b", "changed")]
    assert (tmp_path / "a" / "f").read_text() == "hi\n"
    assert oct((tmp_path / "a" / "f").stat().st_mode & 0o777) == "0o600"


def test_no_op_is_one_command_for_every_step(tmp_path):
    host().converge(steps(tmp_path))
    h = host()
    assert h.converge(steps(tmp_path)) is False
    assert h.commands == 1 and h.result.ok == 3 and h.result.changed == 0


def test_a_dependency_in_another_scope_does_not_wait(tmp_path):
    s = steps(tmp_path)
    s[2] = Step("b", s[2].resources, scope="y", needs=("a",))
    (tmp_path / "a").mkdir()
    h = host()
    h.converge(s)
    assert h.commands == 2  # one read, one apply: b does not wait for a of another scope


def edits(f, names, **kw):
    return [Step(n, (Edited(str(f), set_line(field_is(0, n), f"{n} 1"), n, **kw),), scope=n)
            for n in names]


def test_edits_of_one_file_in_a_round_are_one_write_with_after_run_once(tmp_path):
    f, runs = tmp_path / "tab", tmp_path / "runs"
    f.write_text("keep 0\n")
    h = host()
    assert h.converge(edits(f, ("p", "q", "r"), after=(f"echo x >> {q(str(runs))}",),
                            rollback=True, applied=True)) is True
    assert f.read_text() == "keep 0\n# tinsnip: p\np 1\n# tinsnip: q\nq 1\n# tinsnip: r\nr 1\n"
    assert h.commands == 2 and h.result.changed == 3  # one read, one write
    assert runs.read_text() == "x\n"  # `after` ran once, on the whole new file
    again = host()
    assert again.converge(edits(f, ("p", "q", "r"), after=(f"echo x >> {q(str(runs))}",),
                                rollback=True, applied=True)) is False
    assert again.commands == 1 and runs.read_text() == "x\n"


def test_a_later_edit_of_one_file_plans_on_what_the_earlier_leave(tmp_path):
    f = tmp_path / "tab"
    f.write_text("# tinsnip: p\np 1\n")
    h = host(dry=True)
    h.converge(edits(f, ("p", "q")) + [Step("q2", (Edited(str(f), set_line(
        field_is(0, "q"), "q 2"), "q2"),), scope="q2")])
    assert statuses(h) == [("p", "ok"), ("q", "would change"), ("q2", "would change")]
    assert "+q 2" in h.result.steps[2].diff and "-q 1" in h.result.steps[2].diff


def test_edits_of_one_file_that_cannot_merge_never_share_a_script(tmp_path):
    f = tmp_path / "tab"
    f.write_text("")
    s = edits(f, ("p",)) + edits(f, ("q",), after=("true",))
    h = host()
    h.converge(s)
    assert f.read_text() == "# tinsnip: p\np 1\n# tinsnip: q\nq 1\n"
    assert h.commands == 4 and h.result.changed == 2


def test_edits_of_one_file_are_written_by_the_last_step_that_edits_it(tmp_path):
    """The write waits for the steps between (an export needs its folder made first)."""
    f, d = tmp_path / "tab", tmp_path / "d"
    check = Edited(str(f), set_line(field_is(0, "q"), "q 1"), "q", after=(f"test -d {q(str(d))}",))
    s = [*edits(f, ("p",), after=check.after), Step("mk", (Directory(str(d)),)),
         Step("q", (check,), scope="q")]
    h = host()
    h.converge(s)
    assert statuses(h) == [("p", "changed"), ("mk", "changed"), ("q", "changed")]
    assert h.commands == 2 and "q 1" in f.read_text()
    assert h.result.steps[0].commands == ["(written by q)"]


def test_a_failed_merged_write_fails_every_step_whose_edit_it_held(tmp_path):
    f = tmp_path / "tab"
    f.write_text("keep 0\n")
    s = edits(f, ("p", "q"), after=("false",), rollback=True)
    h = host()
    h.converge([s[0], Step("mk", (Directory(f"{tmp_path}/d"),)), s[1],
                Step("late", (Directory(f"{tmp_path}/l"),))])
    assert statuses(h) == [("mk", "changed"), ("q", "failed"), ("p", "failed"),
                           ("late", "skipped")]
    assert f.read_text() == "keep 0\n"  # the old file put back


def test_a_refused_step_is_labelled_and_later_steps_are_skipped(tmp_path):
    (tmp_path / "a").write_text("a file where a folder belongs")
    h = host()
    h.converge(steps(tmp_path))
    assert statuses(h) == [("a", "failed"), ("other", "skipped"), ("b", "skipped")]
    assert h.result.error.startswith("box: ") and "not a folder" in h.result.error
    assert not (tmp_path / "o").exists()


def test_a_failed_command_names_its_step_and_keeps_what_ran_before(tmp_path):
    (tmp_path / "file").write_text("")
    s = [Step("good", (Directory(f"{tmp_path}/g"),)),
         Step("bad", (Directory(f"{tmp_path}/file/sub"),))]
    h = host()
    h.converge(s)
    assert statuses(h) == [("good", "changed"), ("bad", "failed")]
    assert "box: step 'bad' failed" in h.result.error and "@@tinsnip" not in h.result.error
    assert (tmp_path / "g").is_dir()


def test_a_failed_host_skips_what_it_is_asked_next(tmp_path):
    (tmp_path / "a").write_text("")
    h = host()
    h.converge(steps(tmp_path)[:1])
    h.converge([Step("next", (Directory(f"{tmp_path}/n"),))])
    assert statuses(h)[-1] == ("next", "skipped") and not (tmp_path / "n").exists()


def test_dry_run_changes_nothing_and_shows_commands_and_diff(tmp_path):
    f = tmp_path / "tab"
    f.write_text("keep 1\n")
    s = [Step("e", (Edited(str(f), set_line(field_is(0, "new"), "new 2"), "new"),)),
         *steps(tmp_path)]
    h = host(dry=True)
    assert h.converge(s) is True
    assert h.commands == 1  # facts only
    assert [st for _, st in statuses(h)] == ["would change"] * 4
    assert f.read_text() == "keep 1\n" and not (tmp_path / "a").exists()
    first = h.result.steps[0]
    assert "+new 2" in first.diff and any("through a new temporary file" in c for c in first.commands)


@dataclass(frozen=True)
class Made(Resource):
    """A check that fails while ``path`` is missing (as machine.unshared while the export is
    mounted): it wants what an earlier step makes."""

    path: str

    def describe(self):
        return f"{self.path} made"

    def fact_command(self):
        return f"test -e {q(self.path)} && echo yes || echo no"

    def parse(self, out):
        return out.strip() == "yes"

    def commands(self, fact):
        if not fact:
            raise ConflictError(f"{self.path} is missing")
        return []


def test_a_dry_run_does_not_fail_a_check_the_steps_before_would_satisfy(tmp_path):
    s = [Step("a", (Directory(f"{tmp_path}/a"),), scope="x"),
         Step("c", (Made(f"{tmp_path}/a"),), scope="x", needs=("a",))]
    h = host(dry=True)
    h.converge(s)
    assert statuses(h) == [("a", "would change"), ("c", "unchecked")]
    assert "checked once a has run" in h.result.steps[1].detail and h.result.failed == 0
    real = host()
    real.converge(s)
    assert statuses(real) == [("a", "changed"), ("c", "ok")]
    # without a step before it that would change, the check fails a dry run too
    (tmp_path / "a").rmdir()
    alone = host(dry=True)
    alone.converge(s[1:])
    assert statuses(alone) == [("c", "failed")]


def test_unreachable_in_a_dry_run_lists_steps_unchecked(tmp_path):
    h = Host("gone", None, dry=True)
    h.converge(steps(tmp_path))
    assert {st for _, st in statuses(h)} == {"unchecked"}


def test_results_recap_and_json():
    r = HostResult("box", [StepResult("a", "ok"), StepResult("b", "changed"),
                           StepResult("c", "failed", detail="boom")], commands=2, seconds=0.5)
    assert recap_line(r) == "box: ok=1 changed=1 failed=1 commands=2 seconds=0.50"
    down = HostResult("nas", unreachable="nas: cannot connect over SSH: timed out")
    assert recap_line(down).endswith(" unreachable=1")
    g = GroupResult(title="t")
    g["box"], g["nas"] = r, down
    data = json.loads(g.to_json())
    assert data["hosts"]["box"]["failed"] == 1 and data["hosts"]["nas"]["reachable"] is False
    assert data["exit_code"] == EXIT_FAILED


def test_exit_codes_tell_what_went_wrong():
    g = GroupResult()
    g["a"] = HostResult("a", [StepResult("s", "ok")])
    assert g.exit_code() == EXIT_OK
    g["b"] = HostResult("b", unreachable="b: cannot connect")
    assert g.exit_code() == EXIT_UNREACHABLE
    g["c"] = HostResult("c", [StepResult("s", "failed")])
    assert g.exit_code() == EXIT_FAILED
    g.input_error = "bad"
    assert g.exit_code() == EXIT_INPUT
    g.interrupted = True
    assert g.exit_code() == EXIT_INTERRUPTED


def test_facts_read_ahead_are_used_once_and_only_for_the_same_resources(tmp_path):
    host().converge(steps(tmp_path))
    h = host()
    h.read_ahead([r for s in steps(tmp_path) for r in s.resources])
    h.converge(steps(tmp_path))
    assert h.commands == 1 and h.result.ok == 3
    other = [Step("x", (Directory(f"{tmp_path}/elsewhere"),))]
    h.read_ahead([r for s in steps(tmp_path) for r in s.resources])
    h.converge(other)  # not what was read ahead: read for itself
    assert h.commands == 4 and (tmp_path / "elsewhere").is_dir()


def test_an_edit_carried_by_a_step_that_never_ran_is_not_reported_done(tmp_path):
    """p's edit is written by q; a step between them fails, so neither is written."""
    f = tmp_path / "tab"
    f.write_text("keep 0\n")
    (tmp_path / "file").write_text("")
    s = edits(f, ("p", "q"))
    h = host()
    h.converge([s[0], Step("bad", (Directory(f"{tmp_path}/file/sub"),)), s[1]])
    assert statuses(h) == [("bad", "failed"), ("p", "skipped"), ("q", "skipped")]
    assert "written by q" in h.result.steps[1].detail and f.read_text() == "keep 0\n"
