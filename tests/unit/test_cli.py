"""The command line as a person uses it: no host is contacted by any of these."""
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinsnip_tasks.collections import namespace
from tinsnip_lab.tasks import with_lab

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = """
sheets:
  dynamicalsystem: {nas: nas1, volume: /volume1}
nas:
  nas1: {host: nas1.invalid}
machines:
  gazette:
    sheet: dynamicalsystem
    host: box1.invalid
    environments: [prod]
    services: {hello: {http: 0}}
"""


def run(*args, inventory=None, tool="invoke"):
    env = {k: v for k, v in os.environ.items() if k != "TINSNIP_LAB"}
    if inventory:
        env["TINSNIP_INVENTORY"] = str(inventory)
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def all_tasks(coll, prefix=""):
    for name, task in coll.tasks.items():
        yield prefix + name, task
    for name, sub in coll.collections.items():
        yield from all_tasks(sub, prefix + name + ".")


@pytest.mark.parametrize("tool", ["invoke", "fabric"])
def test_list_shows_every_collection(tool):
    out = run("--list", tool=tool).stdout
    for coll in ("nas.setup", "machine.setup", "service.deploy", "xdg.link", "smep.uid"):
        assert coll in out
    # the lab is part of the checkout's `inv`, never of what `fab` (the product) offers
    assert ("lab.up" in out) == (tool == "invoke")


def test_every_task_has_a_summary_and_help_for_every_argument():
    for name, task in all_tasks(with_lab(namespace())):
        assert (task.__doc__ or "").strip(), name
        params = [p for p in inspect.signature(task.body).parameters if p != "c"]
        missing = [p for p in params if not task.help.get(p)]
        assert not missing, f"{name} lacks help for {missing}"


@pytest.mark.parametrize("args, answer", [
    (("smep.uid", "--sheet", "dynamicalsystem", "--machine", "gazette", "--env", "test"), "10110"),
    (("smep.uid", "--sheet", "dynamicalsystem", "--machine", "station", "--env", "test"), "10010"),
    (("smep.uid", "--sheet", "acmecorp", "--machine", "lldap", "--env", "canary"), "30280"),
    (("smep.ports", "--sheet", "dynamicalsystem", "--machine", "lldap", "--env", "prod"),
     " ".join(str(p) for p in range(10200, 10210))),
], ids=["gazette-test", "station-test", "acmecorp-lldap-canary", "lldap-ports"])
def test_smep_answers_on_the_last_line(args, answer):
    p = run(*args)
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1] == answer


@pytest.mark.parametrize("args, message", [
    (("smep.uid", "--sheet", "mycompany", "--machine", "gazette", "--env", "prod"), "number: N"),
    (("smep.uid", "--sheet", "dynamicalsystem", "--machine", "gazette", "--env", "prd"), "prod, test, dev"),
    (("smep.uid", "--sheet", "Bad_Sheet", "--machine", "gazette", "--env", "prod"), "lowercase"),
    (("machine.setup", "--machine", "nope", "--env", "prod"), "known machines: gateway, gazette, lldap"),
    (("service.deploy", "--machine", "gazette", "--env", "prod", "--service", "lldap", "--dry"),
     "does not run 'lldap'"),
], ids=["sheet-overflow", "bad-env", "bad-name", "unknown-machine", "service-not-on-machine"])
def test_bad_input_is_refused_with_a_clear_message(args, message):
    p = run(*args)
    assert p.returncode != 0
    assert message in p.stdout + p.stderr


def test_table_lists_the_inventory(tmp_path):
    out = run("smep.table", "--sheet", "dynamicalsystem").stdout
    assert "| gazette | test | 10110 | 10110 | 10111 | 10112 |" in out
    assert "| station | prod | 10000 | 10000 | 10001 | 10002 |" in out


@pytest.mark.parametrize("task", [
    ("nas.setup",), ("machine.setup",), ("machine.user",), ("machine.mount",), ("machine.docker",),
    ("machine.env",), ("xdg.link",), ("service.deploy", "--service", "hello")])
def test_dry_run_plans_without_a_reachable_host(tmp_path, task):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(UNREACHABLE)
    p = run(*task, "--machine", "gazette", "--env", "prod", "--dry", inventory=inv)
    assert p.returncode == 3, p.stdout + p.stderr  # planned, but a host could not be checked
    assert "dry run: nothing is changed" in p.stdout
    assert " unchecked " in p.stdout and "unchecked=" in p.stdout


def test_a_real_run_against_an_unreachable_host_fails_clearly(tmp_path):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(UNREACHABLE)
    p = run("machine.user", "--machine", "gazette", "--env", "prod", inventory=inv)
    assert p.returncode == 3 and "cannot connect over SSH" in p.stderr
    assert "box1.invalid: ok=0 changed=0 failed=0 commands=0" in p.stdout
    assert "unreachable=1" in p.stdout and "cannot connect" not in p.stdout


def test_a_broken_inventory_is_named_before_anything_connects(tmp_path):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(UNREACHABLE.replace("environments: [prod]", "environments: [prd]"))
    p = run("machine.setup", "--machine", "gazette", "--env", "prod", inventory=inv)
    assert p.returncode == 2 and "machines.gazette.environments[0]" in p.stdout + p.stderr
