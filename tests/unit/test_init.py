"""`tinsnip init`: starter files valid as written, never an overwrite; a uv service folder."""
import os
import subprocess
import sys

import pytest

from tinsnip_tasks.collections.init import STARTER, service_files, starter_files
from tinsnip_tasks.config import DEFAULTS
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog


def tinsnip(folder, *args, env=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TINSNIP_", "INVOKE_"))}
    clean.update(HOME=str(folder), **(env or {}))
    return subprocess.run([sys.executable, "-m", "tinsnip_tasks", *args], cwd=folder, env=clean,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def test_init_writes_starter_files_the_loaders_accept(tmp_path):
    p = tinsnip(tmp_path, "init")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(STARTER)
    inv = load_inventory(tmp_path / "inventory.yaml", catalog=catalog())
    assert inv.machine("web").services["hello"].ports == {"http": 0}
    # tinsnip.yaml as written is read by the real program: its env (prod) gives the numbers
    p = tinsnip(tmp_path, "smep.uid", "station", "--sheet", "home")
    assert p.returncode == 0 and p.stdout.strip() == "30000", p.stderr  # sheet home: 3; prod
    text = (tmp_path / "tinsnip.yaml").read_text()
    assert all(f"{key}:" in text for key in ("inventory", "env", "connect_timeout"))


def test_starter_settings_are_known_keys():
    import yaml

    section = yaml.safe_load(starter_files()["tinsnip.yaml"])["tinsnip"]
    assert set(section) <= set(DEFAULTS)


@pytest.mark.parametrize("existing", STARTER)
def test_init_never_overwrites(tmp_path, existing):
    (tmp_path / existing).write_text("mine\n")
    p = tinsnip(tmp_path, "init")
    assert p.returncode == 2 and str(tmp_path / existing) in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert (tmp_path / existing).read_text() == "mine\n"
    assert os.listdir(tmp_path) == [existing]  # nothing else written either


def test_init_service_scaffolds_a_uv_folder_the_inventory_can_deploy(tmp_path):
    p = tinsnip(tmp_path, "init", "--service", "my-app")
    assert p.returncode == 0, p.stderr
    folder = tmp_path / "my-app"
    assert sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()) == sorted(
        service_files("my-app"))
    assert "uv sync --frozen --no-install-workspace" in (folder / "Dockerfile").read_text()
    compose = (folder / "docker-compose.yml").read_text()
    assert '"${TIN_PORT_WEB}:8000"' in compose and "{{" not in compose
    # the app answers as gunicorn would call it
    ns = {}
    exec((folder / "my_app" / "app.py").read_text(), ns)
    seen = []
    body = ns["create_app"]()({}, lambda status, headers: seen.append(status))
    assert seen == ["200 OK"] and body[0].startswith(b"my-app from ")
    (tmp_path / "inventory.yaml").write_text(
        "sheets: {home: {nas: n}}\nnas: {n: {host: n}}\nmachines:\n  web:\n    sheet: home\n"
        "    host: box\n    environments: [prod]\n    services:\n"
        "      my-app: {path: my-app, ports: {web: 0}}\n")
    inv = load_inventory(tmp_path / "inventory.yaml", catalog=catalog())
    assert inv.machine("web").services["my-app"].path == str(folder)
    again = tinsnip(tmp_path, "init", "--service", "my-app")
    assert again.returncode == 2 and "exists" in again.stderr


def test_init_service_refuses_a_bad_name(tmp_path):
    p = tinsnip(tmp_path, "init", "--service", "../x")
    assert p.returncode == 2 and "not a service name" in p.stderr and os.listdir(tmp_path) == []
