"""The wheel as a person installs it: built from the repository, installed into a fresh venv,
`tinsnip` run from an empty folder that holds only an inventory.

Building the wheel and installing its dependencies needs the package index (or pip's cache).
"""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tinsnip_lab

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = (ROOT / "tests" / "e2e" / "data" / "inventory.yaml").read_text()


def _run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=600, **kw)
    assert p.returncode == 0, f"{argv}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the `tinsnip` script of a fresh venv holding the wheel, the wheel's path)."""
    d = tmp_path_factory.mktemp("wheel")
    # a copy of the checkout, so the build leaves nothing in it (setuptools builds in place)
    src = d / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".lab", ".lab-*", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(d / "dist"),
          str(src)])
    wheel = next((d / "dist").glob("tinsnip-*.whl"))
    _run([sys.executable, "-m", "venv", str(d / "venv")])
    _run([str(d / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
          "--disable-pip-version-check", str(wheel)])
    return d / "venv" / "bin" / "tinsnip", wheel


@pytest.fixture
def folder(tmp_path):
    """An empty folder with only an inventory, outside the checkout."""
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    return tmp_path


def tinsnip(installed, folder, *args, env=None):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TINSNIP_", "INVOKE_", "PYTHON"))}
    clean.update(env or {})
    return subprocess.run([str(installed[0]), *args], cwd=folder, env=clean,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_the_wheel_holds_the_product_and_its_templates_only(installed):
    names = zipfile.ZipFile(installed[1]).namelist()
    assert "tinsnip_tasks/templates/services/hello/docker-compose.yml.j2" in names
    assert "tinsnip_tasks/templates/Makefile.j2" in names
    assert {"tinsnip_tasks/templates/init/inventory.yaml",
            "tinsnip_tasks/templates/init/tinsnip.yaml",
            "tinsnip_tasks/templates/python-uv/pyproject.toml.j2"} <= set(names)
    assert not [n for n in names if n.startswith(("tinsnip_lab/", "tests/"))]


def test_list_from_an_empty_folder(installed, folder):
    p = tinsnip(installed, folder, "--list")
    assert p.returncode == 0, p.stderr
    for name in ("nas.setup", "machine.setup", "service.deploy", "smep.table"):
        assert name in p.stdout
    assert "lab.up" not in p.stdout and "demo" not in p.stdout


def test_smep_table_reads_the_folders_inventory(installed, folder):
    p = tinsnip(installed, folder, "smep.table", "--sheet", "racesheet")
    assert p.returncode == 0, p.stderr
    assert "Sheet racesheet (S=2)" in p.stdout  # the pin in this folder's inventory
    assert "| crashy | prod | 20700 | 20700 | 20701 | 20702 |" in p.stdout


def test_a_dry_run_renders_the_packaged_templates_against_lab_hosts(lab, installed, folder):
    """service.deploy --dry reads the facts on homelab1 and plans the catalog's files."""
    env = {"TINSNIP_SSH_CONFIG": str(tinsnip_lab.ssh_config_path()),
           "TINSNIP_ALLOWED_HOSTS": ",".join(tinsnip_lab.LAB_HOSTS.values())}
    p = tinsnip(installed, folder, "service.deploy", "--machine", "crashy", "--env", "prod",
                "--service", "hello", "--dry", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "dry run: nothing is changed" in p.stdout
    assert "homelab2   service.files        would change" in p.stdout, p.stdout
    assert "not reachable" not in p.stdout  # the host was reached, its facts read


def test_init_and_task_help_from_an_empty_folder(installed, tmp_path):
    help_ = tinsnip(installed, tmp_path, "machine.setup", "--help")
    assert help_.returncode == 0 and help_.stdout.startswith("Usage: tinsnip"), help_.stderr
    p = tinsnip(installed, tmp_path, "init")
    assert p.returncode == 0, p.stderr
    table = tinsnip(installed, tmp_path, "smep.table", "--sheet", "home")
    assert table.returncode == 0 and "| web | prod | unassigned |" in table.stdout, table.stderr
    again = tinsnip(installed, tmp_path, "init")
    assert again.returncode == 2 and "exists" in again.stderr
