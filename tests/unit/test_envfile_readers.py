"""One secrets file, three readers: tinsnip (python-dotenv's parser plus its refusals), bash
(the seed's `set -a; source`) and docker compose (the lab's compose 2.40 binary reading it as an
env_file: `docker compose config` needs no daemon). Every line tinsnip accepts reads the same in
all three."""
import json
import os
import subprocess

import pytest

from tinsnip_tasks.core import envfile
from tinsnip_tasks.errors import InputError

ACCEPTED = [
    "# the lldap secrets",
    "",
    "PLAIN=abc",
    "COMMENTED=abc # note",
    "HASH_INSIDE=a#b",
    "EMPTY=",
    "SINGLE='with space and $HOME and `id` and \"dq\"'",
    "SINGLE_COMMENT='x y' # note",
    "SINGLE_BACKSLASH='a\\b'",
    "DOUBLE=\"it's here\"",
    "DOUBLE_COMMENT=\"q r\" # note",
    "export EXPORTED=1",
    "SYMBOLS=a.b/c:d@e,f+g%h=i^j!k_l-m",
    "UNICODE='ünï😀'",
    "UNICODE_PLAIN=ünï😀-x",
    "TAB='a\tb'",
]


def bash_reads(path) -> dict:
    script = f"set -a; . {path}; set +a; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True,
                         env={"PATH": os.environ["PATH"]})
    return dict(x.split("=", 1) for x in out.stdout.decode().split("\0") if "=" in x)


@pytest.fixture(scope="module")
def compose():
    from tinsnip_lab.rootfs import ensure_compose_binary

    return str(ensure_compose_binary(log=lambda *_: None))


def compose_reads(compose, folder) -> dict:
    (folder / "docker-compose.yml").write_text(
        "services:\n  t:\n    image: scratch\n    env_file: [secrets.env]\n")
    out = subprocess.run([compose, "config", "--format", "json"], cwd=folder, capture_output=True,
                         text=True, check=True, env={"PATH": os.environ["PATH"],
                                                     "HOME": str(folder)})
    env = json.loads(out.stdout)["services"]["t"]["environment"]
    # `config` prints a literal $ as $$ (its output is a compose file again)
    return {k: v.replace("$$", "$") if v else v for k, v in env.items()}


def test_tinsnip_bash_and_compose_read_the_same_values(tmp_path, compose):
    path = tmp_path / "secrets.env"
    path.write_text("\n".join(ACCEPTED) + "\n")
    ours = envfile.parse_secrets(path.read_text(), str(path))
    assert ours["COMMENTED"] == "abc" and ours["SINGLE_BACKSLASH"] == "a\\b"
    assert len(ours) == len([line for line in ACCEPTED if "=" in line])
    in_bash = bash_reads(path)
    assert {k: in_bash.get(k) for k in ours} == ours
    assert {k: v or "" for k, v in compose_reads(compose, tmp_path).items()} == ours


@pytest.mark.parametrize("line, bash_or_compose_differs", [
    ("A=$HOME", True), ("A=${HOME}", True), ("A=`id`", True), ("A=a b", True),
    ("A=\"x $HOME\"", True), ("A=\"a\\tb\"", True), ("A=x\r", True), ("A='a\\\\b'", True), ("A= b", True), ("A= # note", True),
    ("A = b", True), ("A=~", True), ("A=a\u00a0", True), ("A='x'y", True),
])
def test_what_would_read_differently_is_refused(tmp_path, compose, line, bash_or_compose_differs):
    path = tmp_path / "secrets.env"
    path.write_text(line + "\n")
    with pytest.raises(InputError) as err:
        envfile.parse_secrets(path.read_bytes().decode(), "secrets.env")
    assert "line 1" in str(err.value)
    # the refusal is earned: bash, compose and python-dotenv do not all agree on the line
    from dotenv import dotenv_values

    readings = {"dotenv": dotenv_values(path, interpolate=False).get("A")}
    try:
        readings["bash"] = bash_reads(path).get("A")
    except subprocess.CalledProcessError:
        readings["bash"] = "(refused)"
    try:
        readings["compose"] = compose_reads(compose, tmp_path).get("A")
    except subprocess.CalledProcessError:
        readings["compose"] = "(refused)"
    assert len(set(readings.values())) > 1, readings
