"""A service's ``service.yaml`` is read once per run: every check and step of a deploy gets the
entry read first; a run that loads the inventory again reads the file again."""
import subprocess
import sys

import yaml

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.plans import catalog as catalog_plan

from test_cli import ROOT, UNREACHABLE

#: The task runner in a process that counts each opening of a file named service.yaml.
COUNTING = """
import atexit, os, sys
reads = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)) \\
            and os.fspath(args[0]).endswith("service.yaml"):
        reads.append(os.fspath(args[0]))
sys.addaudithook(hook)
atexit.register(lambda: print(f"service.yaml read {len(reads)} time(s): {reads}", file=sys.stderr))
from invoke.main import program
program.run(["invoke", *sys.argv[1:]])
"""


def test_a_deploy_reads_service_yaml_once(tmp_path):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(UNREACHABLE)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TINSNIP_INVENTORY": str(inv)}
    p = subprocess.run([sys.executable, "-c", COUNTING, "service.deploy", "--machine", "gazette",
                        "--env", "prod", "--service", "hello", "--dry", "--wait", "5"],
                       cwd=ROOT, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert "dry run: nothing is changed" in p.stdout, p.stdout + p.stderr
    assert "service.yaml read 1 time(s)" in p.stderr, p.stderr
    assert "templates/services/hello/service.yaml" in p.stderr


def test_the_entry_is_read_again_for_an_inventory_loaded_again(tmp_path):
    d = tmp_path / "app"
    d.mkdir()
    (d / "service.yaml").write_text("wait: 45\n")
    (d / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({
        "sheets": {"dynamicalsystem": {"nas": "n"}}, "nas": {"n": {"host": "n"}},
        "machines": {"webapps": {"sheet": "dynamicalsystem", "host": "h", "number": 40,
                                 "environments": ["prod"],
                                 "services": {"app": {"path": "app", "ports": {}}}}}}))
    inv = load_inventory(tmp_path / "inventory.yaml", catalog=catalog())
    first = catalog_plan.service_entry(inv, "webapps", "app")
    (d / "service.yaml").write_text("wait: 7\n")
    assert catalog_plan.service_entry(inv, "webapps", "app") is first and first.wait == 45
    again = load_inventory(tmp_path / "inventory.yaml", catalog=catalog())
    assert catalog_plan.service_entry(again, "webapps", "app").wait == 7
