"""Secrets and .env values: one literal word for bash and docker compose, parsed literally,
private, and never shown. Bash really sources the files here; docker compose reads the same
forms on a lab host (tests/e2e/test_secrets.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tinsnip_tasks.core import envfile
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError
from tinsnip_tasks.plans import catalog as catalog_plan
from tinsnip_tasks.plans import secrets

ROOT = Path(__file__).resolve().parents[2]
NASTY = ["plain", "with space", "  lead and trail  ", "$(touch pwned)", "`id`",
         "$HOME", "${HOME}", "${HOME:-x}", "a'b", "'", 'a"b', "a\\b", "a#b", "a #b", "*", "?[a]",
         "ünï😀", "-leading", "a\\nb", "a=b", ";rm -rf /", "$$", "$", "{}", "!x", "tab\there",
         "", "~", "~root", "a;b|c&d>e<f", "x\\y z", "''"]
REFUSED = ["ends\\", "a'$b", "a'`b`", "a'\"b", "it's $5", "\\'", "line\nbreak", "cr\rx",
           "nul\0x", "bell\x07", "sep\u2028x"]
LEAK = "s3cr3t-"  # every refused value below carries it: no error may show it


def bash_source(text, keys, tmp_path):
    """The values of ``keys`` after bash sources ``text`` the seed's way (set -a; source)."""
    f = tmp_path / "t.env"
    f.write_text(text)
    script = "set -a; source " + str(f) + "; set +a; for k in " + " ".join(keys) + \
             "; do printf '%s\\0' \"${!k}\"; done"
    p = subprocess.run(["bash", "-c", script], capture_output=True, cwd=tmp_path,
                       env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    assert p.returncode == 0 and not p.stderr, p.stderr
    return [v.decode() for v in p.stdout.split(b"\0")[:-1]]


def test_every_value_comes_out_of_bash_as_it_went_in(tmp_path):
    keys = [f"V{i}" for i in range(len(NASTY))]
    text = "".join(envfile.line(k, v) + "\n" for k, v in zip(keys, NASTY))
    assert bash_source(text, keys, tmp_path) == NASTY
    assert not (tmp_path / "pwned").exists()
    envfile.check_text(text, "t.env")  # what quote() writes passes the rendered-file check


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_values_no_quoting_carries_are_refused_naming_the_key_only(value):
    with pytest.raises(InputError, match="the value of LLDAP_JWT_SECRET") as err:
        envfile.quote("LLDAP_JWT_SECRET", LEAK + value)
    assert LEAK not in str(err.value)


@pytest.mark.parametrize("key", ["1X", "A-B", "A B", "A\n", "", "$(id)"], ids=repr)
def test_keys_are_variable_names(key):
    with pytest.raises(InputError, match="not a variable name"):
        envfile.quote(key, "x")


def test_secrets_are_read_literally_without_the_operators_environment(monkeypatch):
    monkeypatch.setenv("OPERATOR_TOKEN", "from-the-operators-shell")
    text = ("# lldap\nA=plain-1.2 # a note\nexport B=b\n"
            "C='${OPERATOR_TOKEN} $(id)'\nD=\"it's here\"\n\nE=\n")
    assert envfile.parse_secrets(text, "s.env") == {
        "A": "plain-1.2", "B": "b", "C": "${OPERATOR_TOKEN} $(id)", "D": "it's here", "E": ""}


@pytest.mark.parametrize("text, fragment", [
    ("A=1\nA=2\n", "line 2: A is set twice"),
    ("A='" + LEAK + "\nrest'\n", "line 1: the value of A holds a line break"),
    ('A="' + LEAK + '\n', "line 1: not a KEY=value line bash and docker compose read alike (key 'A')"),
    ('A="' + LEAK + '"x\n', "line 1: not a KEY=value line"),
    (LEAK + "\n", "line 1: not a KEY=value line"),
    ("A=" + LEAK + "\0\n", "holds a NUL"),
    ("A=" + LEAK + "\x07\n", "line 1: the value of A holds a control character"),
    ("\n\nA=" + LEAK + "$HOME\n", "line 3: the value of A would not read the same"),
    ("A=" + LEAK + "\r\n", "line 1: a carriage return"),
    ("A= " + LEAK + "\n", "line 1: the value of A follows a space after '='"),
], ids=["twice", "open-single", "open-double", "after-quote", "no-key", "nul", "control",
        "dollar", "crlf", "space"])
def test_secrets_file_errors_name_line_and_key_never_the_value(text, fragment):
    with pytest.raises(InputError) as err:
        envfile.parse_secrets(text, "secrets/lldap-prod.env")
    assert fragment in str(err.value) and LEAK not in str(err.value)


@pytest.mark.parametrize("mode, ok", [(0o600, True), (0o400, True), (0o640, True),
                                      (0o644, False), (0o666, False), (0o660, False),
                                      (0o604, False), (0o620, False)])
def test_a_secrets_file_others_can_read_or_change_is_refused(tmp_path, mode, ok):
    path = tmp_path / "my secrets" / "lldap-prod.env"
    path.parent.mkdir()
    path.write_text("A=1\n")
    path.chmod(mode)
    if ok:
        assert secrets.read_secrets(path) == {"A": "1"}
        return
    with pytest.raises(InputError) as err:
        secrets.read_secrets(path)
    assert str(err.value).endswith(f"run: chmod 600 '{path}'")


def test_a_secrets_file_of_another_user_is_refused():
    with pytest.raises(InputError, match="belongs to uid 1234.*chown 0 /s && chmod 600 /s"):
        envfile.check_private("/s", 0o100600, 1234, 0)


def test_rendered_env_must_be_literal_words():
    ok = "# c\nA=1\nB=${TIN_PORT_WEB}\nC=$TIN_DATA_DIR/x\nD='a b $(id)'\nE=\"it's\"\nF=\n"
    assert envfile.check_text(ok, "x") == ok
    for bad in ["A=$(id)", "A=a b", "A=`id`", "A=~/x", "A='x'y'", "A=\"$x\"", " A=1",
                "A =1", "A=x;y", "A='a\\'", "A=\"x\r"]:
        with pytest.raises(InputError, match=r"x, line 1"):
            envfile.check_text(bad + "\n", "x")


@pytest.fixture
def lldap_inv(tmp_path):
    data = yaml.safe_load((ROOT / "inventory.yaml").read_text())
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "secrets").mkdir()
    return load_inventory(path, catalog=catalog())


def write_secrets(inv, values, mode=0o600):
    path = Path(inv.path).parent / "secrets" / "lldap-prod.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(mode)
    return path


LLDAP = {"LLDAP_LDAP_BASE_DN": "dc=example,dc=com", "LLDAP_JWT_SECRET": "'$(touch pwned) `id` *'",
         "LLDAP_KEY_SEED": "'a b  c'", "LLDAP_LDAP_USER_PASS": '"pa!! w\'rd"'}


def test_lldap_env_sources_to_the_literal_secrets(lldap_inv, tmp_path):
    write_secrets(lldap_inv, LLDAP)
    lp = make_smep("dynamicalsystem", "lldap", "prod", 2)
    env = catalog_plan.render_service(lldap_inv, lp, "lldap").env
    keys = list(LLDAP)
    assert bash_source(env, keys, tmp_path) == [
        "dc=example,dc=com", "$(touch pwned) `id` *", "a b  c", "pa!! w'rd"]
    assert not (tmp_path / "pwned").exists()


def test_deploy_refuses_a_readable_secrets_file_before_connecting(lldap_inv):
    path = write_secrets(lldap_inv, LLDAP, mode=0o644)
    env = {k: v for k, v in os.environ.items() if k != "TINSNIP_LAB"}
    env["TINSNIP_INVENTORY"] = lldap_inv.path
    p = subprocess.run([sys.executable, "-m", "invoke", "service.deploy", "--machine", "lldap",
                        "--env", "prod", "--service", "lldap"], cwd=ROOT, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"run: chmod 600 {path}" in p.stderr
    assert "homelab2" not in p.stdout + p.stderr  # no host was contacted, none in the recap
    for value in LLDAP.values():
        assert value not in p.stdout + p.stderr


def test_output_that_may_hold_secrets_is_never_traced():
    """-v shows remote output; not that of docker compose config, which holds the env_file."""
    from types import SimpleNamespace

    from tinsnip_tasks.ops.base import Host
    from tinsnip_tasks.output import Output

    class Conn:
        def run(self, *_, **__):
            return SimpleNamespace(ok=True, exited=0, stdout='{"LLDAP_JWT_SECRET": "s3cr3t-x"}\n',
                                   stderr="")

    lines = []
    out = Output(verbose=True)
    out._write = lambda stream, text: lines.append(text)
    h = Host("homelab2", Conn(), output=out)
    h.execute("docker compose config", step="service.check", show="docker compose config",
              secret=True)
    h.execute("echo", step="x", show="echo")
    assert "s3cr3t-x" not in "\n".join(lines[:2]) and "may hold secrets" in lines[1]
    assert "s3cr3t-x" in lines[-1]  # the same output of an ordinary command is traced
