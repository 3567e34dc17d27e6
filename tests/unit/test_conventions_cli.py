"""Invoke's conventions through the real programs: TASK --help, input errors (exit 2, one line,
no traceback), the connect timeout and the time the recap shows, a dry run that could not check
a host (exit 3). No lab: a local listener that accepts and never speaks SSH is the host."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tinsnip_tasks.cli import program_name
from tinsnip_tasks.collections import namespace
from tinsnip_tasks.main import program

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"tinsnip": [sys.executable, "-m", "tinsnip_tasks"],
         "inv": [sys.executable, "-m", "invoke", "--search-root", str(ROOT)],
         "fab": [sys.executable, "-m", "fabric", "--search-root", str(ROOT)]}


def names(coll, prefix=""):
    for name in coll.tasks:
        yield prefix + name
    for name, sub in coll.collections.items():
        yield from names(sub, prefix + name + ".")


def run(tool, *args, cwd, env=None, timeout=120):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TINSNIP_", "INVOKE_", "FABRIC_"))}
    clean.update(env or {})
    return subprocess.run([*TOOLS[tool], *args], cwd=cwd, env=clean, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)


@pytest.mark.parametrize("name", sorted(names(namespace())))
def test_every_task_takes_help_after_its_name(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no inventory, no config: help needs neither
    program.run(["tinsnip", name, "--help"], exit=False)
    out = capsys.readouterr()
    assert out.out.startswith(f"Usage: tinsnip [--core-opts] {name} "), out
    assert "Options:" in out.out and not out.err


@pytest.mark.parametrize("tool", ["tinsnip", "inv", "fab"])
@pytest.mark.parametrize("args", [("machine.setup", "--help"), ("service.deploy", "-h"),
                                  ("service.deploy", "gazette", "--help")])
def test_help_after_the_task_in_every_program(tool, args, tmp_path):
    p = run(tool, *args, cwd=tmp_path if tool == "tinsnip" else ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: {tool} [--core-opts] {args[0]} [--options]"), p.stdout
    assert "--env=STRING" in p.stdout


@pytest.mark.parametrize("files, args, says", [
    ({}, ("machine.setup",), "did not receive required positional arguments: 'machine'"),
    ({}, ("machine.setup", "gazette", "--bogus"), "No idea what '--bogus' is"),
    ({"tinsnip.yaml": "env: [test\n"}, ("machine.setup", "gazette"), "tinsnip.yaml: line 2"),
    ({"tinsnip.yaml": "tinsnip: [1, 2]\n"}, ("machine.setup", "gazette"),
     "tinsnip.yaml: tinsnip: expected a mapping"),
    ({"run.yaml": "tinsnip: {connect_timeout: soon}\n", "inventory.yaml": "sheets: {}\n"},
     ("-f", "run.yaml", "smep.table", "--sheet", "x"), "connect_timeout"),
    ({"inventory.yaml": "machines: [\n"}, ("smep.table", "--sheet", "x"), "not valid YAML"),
])
def test_input_errors_exit_2_with_one_line(tmp_path, files, args, says):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    p = run("tinsnip", *args, cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert says in p.stderr


def test_the_program_name_is_told_by_the_config():
    from fabric import Config as FabricConfig
    from invoke import Config

    from tinsnip_tasks.config import TinsnipConfig

    assert [program_name(k()) for k in (TinsnipConfig, Config, FabricConfig)] == \
        ["tinsnip", "inv", "fab"]


@pytest.fixture
def silent():
    """A TCP listener on 127.0.0.1 that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held, stop = [], threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join()
    for s in held:
        s.close()
    sock.close()


def silent_inventory(folder: Path, port: int) -> None:
    (folder / "inventory.yaml").write_text(f"""
sheets:
  dynamicalsystem: {{nas: nas1}}
nas:
  nas1: {{host: "127.0.0.1:{port}"}}
machines:
  gazette:
    sheet: dynamicalsystem
    host: "127.0.0.1:{port}"
    environments: [prod]
""")


@pytest.mark.parametrize("tool, how", [
    ("tinsnip", {"env": {"TINSNIP_CONNECT_TIMEOUT": "1.5"}}),
    ("tinsnip", {"file": "tinsnip.yaml"}),
    ("tinsnip", {"env": {"TINSNIP_TINSNIP_CONNECT_TIMEOUT": "1.5"}}),
    ("inv", {"env": {"TINSNIP_CONNECT_TIMEOUT": "1.5"}}),
    ("inv", {"env": {"INVOKE_TINSNIP_CONNECT_TIMEOUT": "1.5"}}),
    ("fab", {"env": {"FABRIC_TINSNIP_CONNECT_TIMEOUT": "1.5"}}),
])
def test_connect_timeout_is_honoured_and_the_recap_shows_the_time(silent, tmp_path, tool, how):
    silent_inventory(tmp_path, silent)
    env = {"TINSNIP_INVENTORY": str(tmp_path / "inventory.yaml"), "HOME": str(tmp_path)}
    env.update(how.get("env", {}))
    if how.get("file"):
        (tmp_path / how["file"]).write_text("tinsnip:\n  connect_timeout: 1.5\n")
    args = ["machine.status", "gazette", "--env", "prod", "--json"]
    if tool == "fab":
        args = ["-H", f"127.0.0.1:{silent}", *args]
    started = time.monotonic()
    p = run(tool, *args, cwd=tmp_path if tool == "tinsnip" else ROOT, env=env)
    took = time.monotonic() - started
    recap = json.loads(p.stdout)
    assert p.returncode == 3, p.stderr
    (host,) = recap["hosts"].values()
    assert "no SSH answer within 1.5 s" in host["unreachable"]
    assert 1.0 <= host["seconds"] <= took, (host, took)  # the time really spent
    assert took < 9, p.stderr  # the default (10 s) was not used


def test_a_dry_run_that_could_not_check_a_host_exits_3(silent, tmp_path):
    silent_inventory(tmp_path, silent)
    p = run("tinsnip", "machine.setup", "gazette", "--env", "prod", "--dry", cwd=tmp_path,
            env={"TINSNIP_CONNECT_TIMEOUT": "1", "HOME": str(tmp_path)})
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "unchecked=" in p.stdout


@pytest.mark.parametrize("args, answer", [
    (("smep.uid", "gazette", "--env", "test"), "10110"),  # the sheet from the inventory
    (("smep.ports", "--machine", "lldap", "--env", "prod"), "10200 10201"),
    (("smep.uid", "gazette", "--sheet", "acmecorp", "--env", "prod"), "30100"),  # given wins
])
def test_smep_takes_the_sheet_from_the_inventory(args, answer):
    p = run("inv", *args, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.startswith(answer), p.stderr


def test_smep_without_sheet_for_an_unknown_machine_asks_for_it():
    p = run("inv", "smep.uid", "nobody", "--env", "prod", cwd=ROOT)
    assert p.returncode == 2 and "give --sheet" in p.stderr


def test_site_up_dry_previews_past_a_missing_secrets_file_and_a_missing_registry(tmp_path):
    run("tinsnip", "init", cwd=tmp_path)
    text = (tmp_path / "inventory.yaml").read_text()
    (tmp_path / "inventory.yaml").write_text(text.replace(
        "host: nas.lan", "host: nas.invalid").replace("host: box1.lan", "host: box1.invalid")
        .replace("      hello: {http: 0}", "      lldap: {ldap: 0, web: 1}\n      hello: {http: 2}"))
    p = run("tinsnip", "site.up", "--dry", "--json", cwd=tmp_path, env={"HOME": str(tmp_path)})
    recap = json.loads(p.stdout)
    assert p.returncode == 1, p.stderr  # the one thing that cannot be previewed is a failure
    steps = {(s["step"], s["label"]): s for h in recap["hosts"].values() for s in h["steps"]}
    failed = steps[("service.files", "web-prod lldap")]
    assert failed["status"] == "failed" and "secrets/web-prod.env" in failed["detail"]
    assert steps[("service.up", "web-prod hello")]["status"] == "unchecked"  # still previewed
    detail = steps[("registry", "web")]["detail"]
    assert detail.startswith("web: number assigned on the NAS") and "shows 04" in detail
    assert steps[("machine.mount", "web-prod")]["status"] == "unchecked"


def test_machine_setup_dry_plans_a_new_machine_whose_number_the_nas_assigns(tmp_path):
    """No pin and no default number, the NAS not reachable: the plan says the number is
    assigned on the NAS and shows every step with the number an empty registry gives."""
    run("tinsnip", "init", cwd=tmp_path)
    text = (tmp_path / "inventory.yaml").read_text()
    (tmp_path / "inventory.yaml").write_text(
        text.replace("host: nas.lan", "host: nas.invalid").replace("host: box1.lan",
                                                                  "host: box1.invalid"))
    p = run("tinsnip", "machine.setup", "web", "--env", "prod", "--dry", "--json", cwd=tmp_path,
            env={"HOME": str(tmp_path)})
    assert p.returncode == 3, (p.stdout, p.stderr)  # planned without checking: exit 3
    recap = json.loads(p.stdout)
    steps = {(s["step"], s["label"]): s for h in recap["hosts"].values() for s in h["steps"]}
    detail = steps[("registry", "web")]["detail"]
    assert detail.startswith("web: number assigned on the NAS") and "shows 04" in detail
    planned = steps[("machine.user", "web-prod")]
    assert planned["status"] == "unchecked" and "user web-prod (30400)" in planned["detail"]
    assert recap["exit_code"] == 3 and "run machine.setup" not in p.stderr
