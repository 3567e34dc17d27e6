""".env values as docker compose reads them on a machine host: every value tinsnip quotes comes
out of compose (as env_file, and through ${...} interpolation) exactly as it went in, both with
the seed's pattern (bash sources the file first) and with compose alone."""
import base64
import hashlib
import shlex

import pytest

from tinsnip_tasks.core import envfile
from tinsnip_tasks.ops import gate
from tinsnip_tasks.ops.docker import as_user, compose_as

HOST, USER, UID, MOUNT = "homelab1", "gazette-prod", 10100, "/mnt/gazette-prod"
PROBE = f"{MOUNT}/service/envprobe"
VALUES = ["plain", "with space", "  lead and trail  ", "$(touch /tmp/pwned-by-env)", "`id`",
          "$HOME", "${HOME}", "${HOME:-x}", "a'b", "'", 'a"b', "a\\b", "a#b", "a #b", "*",
          "?[a]", "ünï😀", "-leading", "a\\nb", "a=b", ";rm -rf /", "$$", "$", "{}", "!x",
          "tab\there", "~", "~root", "a;b|c&d>e<f", "x\\y z", "''", "%s%n", "\\"]


@pytest.fixture(scope="module")
def probe(lab, e2e_cli):
    args = ("--machine", "gazette", "--env", "prod")
    e2e_cli.inv("nas.setup", *args)
    e2e_cli.inv("machine.setup", *args)
    e2e_cli.inv("service.deploy", *args, "--service", "hello")  # pulls busybox:1.36
    quotable = [v for v in VALUES if _quotable(v)]
    env = "".join(envfile.line(f"V{i}", v) + "\n" for i, v in enumerate(quotable))
    compose = ("services:\n  t:\n    image: busybox:1.36\n    env_file: [.env]\n"
               "    environment:\n"
               + "".join(f"      I{i}: ${{V{i}}}\n" for i in range(len(quotable))))
    for name, text in ((".env", env), ("docker-compose.yml", compose)):
        data = base64.b64encode(text.encode()).decode()
        lab.run(HOST, f"sudo -u {USER} sh -c {shlex.quote(f'mkdir -p {PROBE} && base64 -d > {PROBE}/{name}')}"
                      f" <<< {data}")
    # the seed's sourcing runs only on files whose digest root recorded, as a deploy does
    sums = gate.sums_file(MOUNT)
    text = gate.with_digest(f"{PROBE}/.env", hashlib.sha256(env.encode()).hexdigest())(
        lab.read(HOST, sums))
    lab.run(HOST, f"base64 -d > {sums} <<< {base64.b64encode(text.encode()).decode()}")
    yield quotable
    lab.run(HOST, f"rm -rf {PROBE}")


def _quotable(value):
    try:
        envfile.quote("K", value)
        return True
    except Exception:
        return False


def environ(lab, command):
    out = lab.run(HOST, command, warn=True)
    assert out.ok, out.stderr
    return dict(x.split("=", 1) for x in out.stdout.split("\0") if "=" in x)


def check(env, values):
    for i, v in enumerate(values):
        assert (env.get(f"V{i}"), env.get(f"I{i}")) == (v, v), f"value {i}: {v!r}"


def test_every_quotable_value_is_refused_or_kept(probe):
    assert len(probe) == len(VALUES) - 1  # only a value ending in \ cannot be quoted


def test_compose_after_the_seeds_bash_sourcing_reads_each_value_literally(lab, probe):
    run = "run --rm -T t cat /proc/self/environ"
    check(environ(lab, compose_as(USER, MOUNT, PROBE, run)), probe)
    assert not lab.run(HOST, "test -e /tmp/pwned-by-env", warn=True).ok


def test_compose_alone_reads_each_value_literally(lab, probe):
    run = as_user(USER, UID, f"sh -c {shlex.quote(f'cd {PROBE} && docker compose run --rm -T t cat /proc/self/environ')}")
    check(environ(lab, run), probe)
