"""tinsnip's settings through Invoke's configuration, as `tinsnip`, `inv` and `fab` read them.

Each inventory pins a different sheet number, so `smep.table`'s first line tells which file
was read. No host is contacted.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = """
sheets:
  dynamicalsystem: {{nas: nas1, volume: /volume1, number: {n}}}
nas:
  nas1: {{host: nas1.invalid}}
machines:
  gazette:
    sheet: dynamicalsystem
    host: box1.invalid
    environments: [prod]
"""
PROGRAMS = {  # argv, the program's config file name, its environment variable prefix
    "tinsnip": ([sys.executable, "-m", "tinsnip_tasks"], "tinsnip", "TINSNIP_"),
    "inv": ([sys.executable, "-m", "invoke", "--search-root", str(ROOT)], "invoke", "INVOKE_"),
    "fab": ([sys.executable, "-m", "fabric", "--search-root", str(ROOT)], "fabric", "FABRIC_"),
}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A project folder with inventories pinning sheet numbers 1..6, and a home of its own."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    for n in range(1, 7):
        (work / f"inv{n}.yaml").write_text(INVENTORY.format(n=n))
    (work / "inventory.yaml").write_text(INVENTORY.format(n=1))
    return work, home


def run(program, folder, *args, env=None, files=None):
    work, home = folder
    for name, text in (files or {}).items():
        (home / name if name.startswith(".") else work / name).write_text(text)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TINSNIP_", "INVOKE_", "FABRIC_"))}
    clean.update(HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    argv, _, _ = PROGRAMS[program]
    return subprocess.run([*argv, *args], cwd=work, env=clean, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def sheet_number(p):
    assert p.returncode == 0, p.stdout + p.stderr
    return int(p.stdout.split("(S=")[1].split(")")[0])


TABLE = ("smep.table", "--sheet", "dynamicalsystem")


def test_tinsnip_reads_inventory_yaml_from_the_current_folder(folder):
    assert sheet_number(run("tinsnip", folder, *TABLE)) == 1


@pytest.mark.parametrize("program", ["tinsnip", "inv", "fab"])
def test_each_level_wins_over_the_one_below(folder, program):
    _, name, prefix = PROGRAMS[program]
    user_file = {f".{name}.yaml": "tinsnip:\n  inventory: inv2.yaml\n"}
    assert sheet_number(run(program, folder, *TABLE, files=user_file)) == 2
    if program == "tinsnip":  # the project is the current folder
        project = {**user_file, "tinsnip.yaml": "tinsnip:\n  inventory: inv3.yaml\n"}
        assert sheet_number(run(program, folder, *TABLE, files=project)) == 3
    shortcut = {"TINSNIP_INVENTORY": "inv4.yaml"}
    assert sheet_number(run(program, folder, *TABLE, env=shortcut)) == 4
    prefixed = {**shortcut, f"{prefix}TINSNIP_INVENTORY": "inv5.yaml"}
    assert sheet_number(run(program, folder, *TABLE, env=prefixed)) == 5
    (folder[0] / "runtime.yaml").write_text("tinsnip:\n  inventory: inv6.yaml\n")
    assert sheet_number(run(program, folder, "-f", "runtime.yaml", *TABLE, env=prefixed)) == 6


def test_a_setting_tinsnip_cannot_use_is_refused_with_its_key(folder):
    p = run("tinsnip", folder, "machine.user", "--machine", "gazette", "--env", "prod",
            env={"TINSNIP_SUDO": "maybe"})
    assert p.returncode == 2 and "tinsnip.sudo: 'maybe' is not one of auto, always, never" in p.stderr
    p = run("inv", folder, "machine.user", "--machine", "gazette", "--env", "prod",
            files={".invoke.yaml": "tinsnip:\n  inventroy: x.yaml\n"})
    assert p.returncode == 2 and "unknown key 'inventroy'" in p.stderr


@pytest.mark.parametrize("task", [("smep.uid", "--machine", "gazette", "--env", "prod"),
                                  ("smep.table",)])
def test_smep_refuses_an_invalid_inventory(folder, task):
    (folder[0] / "inventory.yaml").write_text(INVENTORY.format(n=1).replace("[prod]", "[prd]"))
    p = run("tinsnip", folder, *task, "--sheet", "dynamicalsystem")
    assert p.returncode == 2 and "machines.gazette.environments[0]" in p.stderr


def test_smep_answers_without_an_inventory_file(folder):
    (folder[0] / "inventory.yaml").unlink()
    p = run("tinsnip", folder, "smep.uid", "--sheet", "dynamicalsystem", "--machine", "gazette",
            "--env", "test")
    assert p.returncode == 0 and p.stdout.strip() == "10110"


@pytest.mark.parametrize("program, spelling", [
    ("tinsnip", ("--dry",)), ("tinsnip", ("-R",)), ("tinsnip", ("TINSNIP_RUN_DRY=1",)),
    ("tinsnip", ("tinsnip.yaml",)), ("inv", ("--dry",)), ("inv", ("INVOKE_RUN_DRY=1",)),
    ("inv", (".invoke.yaml",)), ("fab", ("-R",)), ("fab", ("FABRIC_RUN_DRY=1",)),
])
def test_every_spelling_of_dry_plans_without_a_reachable_host(folder, program, spelling):
    """With the hosts unreachable, a dry run plans; a real run would fail to connect."""
    word = spelling[0]
    args, env, files = [], {}, {}
    if word.startswith("-"):
        args = [word]
    elif "=" in word:
        env = dict([word.split("=")])
    else:
        files = {word: "run:\n  dry: true\n"}
    p = run(program, folder, *args, "machine.user", "--machine", "gazette", "--env", "prod",
            env=env, files=files)
    assert p.returncode == 3, p.stdout + p.stderr  # planned; the host could not be checked
    assert "dry run: nothing is changed" in p.stdout and "unchecked=" in p.stdout


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_the_default_environment_comes_from_the_config(program, folder):
    """`--env` left out: the config's tinsnip.env (file or variable) gives it; nothing gives
    it: exit 2 naming both ways; a name that is not an environment: exit 2."""
    _, config_name, prefix = PROGRAMS[program]
    args = ("smep.uid", "--sheet", "dynamicalsystem", "--machine", "gazette")
    # sheet pinned to 1, gazette 01: prod 10100, test 10110
    user_file = f".{config_name}.yaml"
    by_file = run(program, folder, *args, files={user_file: "tinsnip:\n  env: test\n"})
    assert by_file.returncode == 0 and by_file.stdout.strip() == "10110", by_file.stderr
    (folder[1] / user_file).unlink()
    by_var = run(program, folder, *args, env={f"{prefix}TINSNIP_ENV": "dev"})
    assert by_var.returncode == 0 and by_var.stdout.strip() == "10120", by_var.stderr
    shortcut = run(program, folder, *args, env={"TINSNIP_ENV": "staging"})
    assert shortcut.returncode == 0 and shortcut.stdout.strip() == "10130", shortcut.stderr
    given = run(program, folder, *args, "--env", "prod", env={"TINSNIP_ENV": "staging"})
    assert given.returncode == 0 and given.stdout.strip() == "10100", given.stderr
    missing = run(program, folder, *args)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "--env" in missing.stderr and "tinsnip.env" in missing.stderr
    bad = run(program, folder, *args, env={"TINSNIP_ENV": "production"})
    assert bad.returncode == 2 and "production" in bad.stderr and bad.stdout == ""
