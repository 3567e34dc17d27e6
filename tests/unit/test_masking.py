"""Secrets stay secret in every output: every value of the secrets file is masked in step lines,
diffs, -v traces, errors (compose's, YAML's), the JSON recap and the recap file (0600, written
without following links); values that are no secret are shown."""
import io
import json
import os
import subprocess
import sys

import pytest
import yaml

from tinsnip_tasks.ops.base import Host, Step, facts_script, split_facts
from tinsnip_tasks.ops.resources import File
from tinsnip_tasks.output import Output, write_atomic
from tinsnip_tasks.results import GroupResult, HostResult, Masker, StepResult

from test_cli import ROOT

SECRET = "hunter2-Ünï\t\"q"


def test_the_mask_hides_a_value_as_text_repr_and_json_write_it():
    m = Masker(["short", "a-much-longer-short-value", SECRET, ""])
    assert m.text("x short y a-much-longer-short-value") == "x *** y ***"
    assert SECRET not in m.text(f"v={SECRET} r={SECRET!r} j={json.dumps(SECRET)}")
    assert "hunter2" not in m.text(f"r={SECRET!r} j={json.dumps(SECRET)}")
    assert m.data({"k": [f"<{SECRET}>", 3, None], "n": True}) == {"k": ["<***>", 3, None],
                                                                 "n": True}
    assert not Masker() and Masker().text("x") == "x"


def test_every_stream_of_the_output_is_masked():
    out, err = io.StringIO(), io.StringIO()
    o = Output(verbose=True, out=out, err=err)
    o.mask.add([SECRET])
    o.step("h", StepResult("service.files", "would change", "e", f"d {SECRET}",
                           [f"c {SECRET}"], f"+pw: {SECRET}\n"))
    o.trace("h", f"compose says {SECRET}")
    o.error(f"error: yaml: {SECRET}")
    o.note(f"note {SECRET}")
    o.info(f"log {SECRET}")
    text = out.getvalue() + err.getvalue()
    assert "hunter2" not in text and text.count("***") == 7


def test_the_json_recap_is_masked_as_data_and_stays_json():
    out = io.StringIO()
    o = Output(json=True, out=out, err=io.StringIO())
    o.mask.add([SECRET, "true", "hosts"])
    g = GroupResult(title="t")
    g["h"] = HostResult("h", [StepResult("s", "failed", "", f"bad {SECRET}")], error=f"e {SECRET}")
    o.recap(g)
    data = json.loads(out.getvalue())
    assert "hunter2" not in out.getvalue()
    assert data["hosts"]["h"]["error"] == "e ***" and data["dry"] is False


def test_the_recap_file_is_private_and_replaces_a_link_without_following_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    recap = tmp_path / "recap.json"
    os.symlink(victim, recap)
    write_atomic(recap, b'{"a": 1}\n')
    assert victim.read_text() == "keep\n"
    assert not recap.is_symlink() and recap.read_text() == '{"a": 1}\n'
    assert recap.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recap.json", "victim"]


def _fact(f: File, tmp_path) -> str:
    out = subprocess.run(["sh", "-c", facts_script([f])], capture_output=True, text=True,
                         cwd=tmp_path).stdout
    return split_facts(out, 1)[0]


def test_an_env_diff_shows_public_values_and_masks_secret_ones(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# old\nTIN_PORT_WEB=14001\nAPP=${TIN_PORT_WEB}\nTOKEN='old-secret'\n")
    new = b"# new\nTIN_PORT_WEB=14002\nAPP=${TIN_PORT_WEB}\nTOKEN='new-secret'\n"
    f = File(str(path), new, mode=0o600, secret=True, public=("TIN_PORT_WEB", "APP"))
    out = _fact(f, tmp_path)
    assert "old-secret" not in out and "old-secret" not in f.trace(out)
    diff = f.diff(out)
    assert "-TIN_PORT_WEB=14001" in diff and "+TIN_PORT_WEB=14002" in diff
    assert " APP=${TIN_PORT_WEB}" in diff and " TOKEN=***" in diff
    assert "secret" not in diff.replace(".env", "")


def test_a_secret_value_change_alone_is_said_without_showing_it(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\nTOKEN='old'\n")
    f = File(str(path), b"A=1\nTOKEN='new'\n", secret=True, public=("A",))
    assert f.diff(_fact(f, tmp_path)) == f"--- {path}: values differ (secret values are not shown)\n"


def test_a_plain_files_content_is_in_its_diff_but_not_in_the_trace(tmp_path):
    path = tmp_path / "docker-compose.yml"
    path.write_text("password: old-secret\n")
    f = File(str(path), b"password: new\n")
    out = _fact(f, tmp_path)
    assert "old-secret" in f.diff(out)  # a diff shows the file (the run masks secrets in it)
    shown = f.trace(out)
    assert "b2xkLXNlY3JldA" not in shown and "characters, shown only in a diff" in shown


def test_the_verbose_trace_of_facts_leaves_file_contents_out(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("x: 1\n")

    class Local:
        def run(self, command, **kw):
            return _Result(subprocess.run(["sh", "-s"], input=kw["in_stream"].getvalue(),
                                          text=True, capture_output=True, cwd=tmp_path))

    err = io.StringIO()
    h = Host("h", Local(), dry=True, output=Output(verbose=True, out=io.StringIO(), err=err))
    h.converge([Step("s", (File(str(path), b"x: SECRETLESS-NEW\n"),))])
    assert "eDogMQ" not in err.getvalue()  # base64 of "x: 1"
    assert "+x: SECRETLESS-NEW" in h.output.out.getvalue()


class _Result:
    def __init__(self, p):
        self.stdout, self.stderr, self.exited, self.ok = p.stdout, p.stderr, p.returncode, \
            p.returncode == 0


SECRET_FOLDER_INV = {
    "sheets": {"dynamicalsystem": {"nas": "n"}},
    "nas": {"n": {"host": "nas1.invalid"}},
    "machines": {"webapps": {"sheet": "dynamicalsystem", "host": "box1.invalid", "number": 40,
                             "environments": ["prod"],
                             "services": {"app": {"path": "app", "ports": {"web": 2}}}}}}


@pytest.mark.parametrize("flags", [["--dry"], ["--dry", "-v"], ["--dry", "--json"]])
def test_a_secret_in_a_broken_rendered_compose_file_is_masked_everywhere(tmp_path, flags):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "docker-compose.yml.j2").write_text(
        "services:\n  app:\n    environment:\n      PW: {{ secrets.TOKEN }} ]: [\n")
    (tmp_path / "app" / "service.yaml").write_text("secrets: [TOKEN]\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "webapps-prod.env").write_text(
        "TOKEN=tok-Sekr1t-value\nUNUSED=other-Sekr1t\n")
    (tmp_path / "secrets" / "webapps-prod.env").chmod(0o600)
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(SECRET_FOLDER_INV))
    recap = tmp_path / "recap.json"
    env = {k: v for k, v in os.environ.items() if k != "TINSNIP_LAB"}
    env.update(TINSNIP_INVENTORY=str(tmp_path / "inventory.yaml"),
               INVOKE_TINSNIP_RECAP_FILE=str(recap))
    p = subprocess.run([sys.executable, "-m", "invoke", "service.deploy", "--machine", "webapps",
                        "--env", "prod", "--service", "app", *flags], cwd=ROOT, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    text = p.stdout + p.stderr + recap.read_text()
    assert p.returncode == 2 and "is not valid YAML" in text, text
    assert "Sekr1t" not in text and "***" in text
    assert recap.stat().st_mode & 0o777 == 0o600


def test_a_file_holding_a_secret_hides_the_lines_it_loses(tmp_path):
    """A rotated secret's old value is no longer in the secrets file: the mask cannot know it,
    so the diff of a file holding a secret shows no line that goes."""
    path = tmp_path / "docker-compose.yml"
    path.write_text("a: 1\npw: old-rotated-value\nimage: x:1\n")
    f = File(str(path), b"a: 1\npw: new-value\nimage: x:2\n", holds_secret=True)
    diff = f.diff(_fact(f, tmp_path))
    assert "old-rotated-value" not in diff and "x:1" not in diff
    assert " a: 1" in diff and "+pw: new-value" in diff and "+image: x:2" in diff
    assert diff.count("-*** (a line not in the new file: not shown") == 2


def test_the_values_a_run_masks_are_every_value_of_the_file_or_none_it_cannot_read(tmp_path):
    from tinsnip_tasks.core.inventory import load_inventory
    from tinsnip_tasks.plans.secrets import secret_values

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(SECRET_FOLDER_INV))
    inv = load_inventory(tmp_path / "inventory.yaml")
    assert secret_values(inv, "webapps", "prod") == []  # no file
    (tmp_path / "secrets").mkdir()
    f = tmp_path / "secrets" / "webapps-prod.env"
    f.write_text("TOKEN=tok-Sekr1t-value\nUNUSED=other-Sekr1t\n")
    f.chmod(0o600)
    assert secret_values(inv, "webapps", "prod") == ["tok-Sekr1t-value", "other-Sekr1t"]
    f.chmod(0o644)  # others may read it: refused, so no step gets a value to print
    assert secret_values(inv, "webapps", "prod") == []
