"""A service folder runs nothing and is read through nothing on the operator's machine: templates
render in Jinja2's sandbox; links, FIFOs, sockets and devices are refused naming the path, with
nothing read through them and no wait on a FIFO."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import yaml

from tinsnip_tasks.core import context
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog, render
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError, InventoryError, TemplateError
from tinsnip_tasks.plans import catalog as catalog_plan

SMEP = make_smep("dynamicalsystem", "webapps", "prod", 40)
SSTI = [
    "{{ cycler.__init__.__globals__.os.system('id > PROOF') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ smep.__class__.__init__.__globals__ }}",
    "{{ ports.update({'x': 1}) }}",
    "{{ ports.clear() }}",
    "{% set x = 'a' * 100000000 %}{{ x|length }}",
    "{{ 10 ** 100000000 }}",
    "{{ range(10000000)|list|length }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ config }}{{ request }}",
    "{% include '../../etc/passwd' %}",
    "{% include '/etc/passwd' %}",
    "{{ 1 / 0 }}",
    "{{ 1 + 'a' }}",
]


def site(tmp_path, files):
    d = tmp_path / "src" / "app"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    inv = {"sheets": {"dynamicalsystem": {"nas": "n"}}, "nas": {"n": {"host": "n"}},
           "machines": {"webapps": {"sheet": "dynamicalsystem", "host": "h", "number": 40,
                                    "environments": ["prod"],
                                    "services": {"app": {"path": "src/app", "ports": {"web": 2}}}}}}
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inv))
    return load_inventory(tmp_path / "inventory.yaml", catalog=catalog()), d


@pytest.mark.parametrize("payload", SSTI)
def test_a_template_runs_nothing_and_changes_nothing(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    inv, d = site(tmp_path, {"docker-compose.yml.j2": f"services: {{}}\n# {payload}\n"})
    ports = dict(inv.machine("webapps").services["app"].ports)
    with pytest.raises(TemplateError) as e:
        catalog_plan.render_service(inv, SMEP, "app")
    assert "docker-compose.yml.j2" in str(e.value)
    assert not (tmp_path / "PROOF").exists() and not (d / "PROOF").exists()
    assert "root:" not in str(e.value)
    assert inv.machine("webapps").services["app"].ports == ports


def test_the_sandbox_error_names_the_template_and_the_line(tmp_path):
    (tmp_path / "t.j2").write_text("a\nb\n{{ cycler.__init__.__globals__.os.system('id') }}\n")
    with pytest.raises(TemplateError, match=r"'t.j2' of .* line 3: refused by the sandbox: "
                                            r"access to attribute '__init__'"):
        render("t.j2", {}, root=tmp_path, folder=True)


def test_catalog_templates_render_in_the_sandbox_too(tmp_path):
    (tmp_path / "t.j2").write_text("{{ cycler.__init__.__globals__ }}")
    with pytest.raises(TemplateError, match="refused by the sandbox"):
        render("t.j2", {}, root=tmp_path)


def test_an_include_of_the_folder_works_and_one_outside_does_not(tmp_path):
    (tmp_path / "part.j2").write_text("x={{ v }}\n")
    (tmp_path / "t.j2").write_text("{% include 'part.j2' %}")
    assert render("t.j2", {"v": 1}, root=tmp_path, folder=True) == "x=1\n"
    (tmp_path / "u.j2").write_text("{% include '../t.j2' %}")
    with pytest.raises(TemplateError, match="not found"):
        render("u.j2", {}, root=tmp_path, folder=True)


def _shadow(tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("root:$6$SHADOWCONTENT:19000:0:99999:7:::\n")
    return secret


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.yml.j2", "service.env",
                                  "service.env.j2", "service.yaml", ".dockerignore", "Dockerfile",
                                  "app.py"])
def test_a_link_is_refused_naming_it_and_nothing_is_read_through_it(tmp_path, name):
    outside = _shadow(tmp_path)
    compose = "docker-compose.yml.j2" if name == "docker-compose.yml" else "docker-compose.yml"
    files = {compose: "services: {}\n"}
    inv, d = site(tmp_path, files)
    os.symlink(outside, d / name)
    with pytest.raises(InputError) as e:
        catalog_plan.render_service(inv, SMEP, "app")
    assert f"{d / name} is a link" in str(e.value)
    assert "SHADOWCONTENT" not in str(e.value)


def test_a_linked_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x").write_text("SHADOWCONTENT")
    inv, d = site(tmp_path, {"docker-compose.yml": "services: {}\n"})
    os.symlink(tmp_path / "elsewhere", d / "sub")
    with pytest.raises(InputError, match=f"{d / 'sub'} is a link"):
        catalog_plan.render_service(inv, SMEP, "app")


def test_a_link_at_the_compose_file_is_refused_when_the_inventory_loads(tmp_path):
    outside = _shadow(tmp_path)
    (tmp_path / "src" / "app").mkdir(parents=True)
    os.symlink(outside, tmp_path / "src" / "app" / "docker-compose.yml")
    with pytest.raises(InventoryError, match="docker-compose.yml is a link"):
        load_inventory(_inv(tmp_path))


def _inv(tmp_path):
    inv = {"sheets": {"dynamicalsystem": {"nas": "n"}}, "nas": {"n": {"host": "n"}},
           "machines": {"webapps": {"sheet": "dynamicalsystem", "host": "h", "number": 40,
                                    "environments": ["prod"],
                                    "services": {"app": {"path": "src/app", "ports": {"web": 2}}}}}}
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inv))
    return tmp_path / "inventory.yaml"


@pytest.mark.parametrize("name", ["docker-compose.yml.j2", "service.env", "app.py"])
def test_a_fifo_is_refused_without_waiting(tmp_path, name):
    """In a child process with a timeout: a read that waited on the FIFO would hang the test."""
    inv, d = site(tmp_path, {"docker-compose.yml": "services: {}\n"})
    os.mkfifo(d / name)
    code = textwrap.dedent(f"""
        from tinsnip_tasks.core.inventory import load_inventory
        from tinsnip_tasks.core.render import catalog
        from tinsnip_tasks.core.smep import make_smep
        from tinsnip_tasks.errors import TinsnipError
        from tinsnip_tasks.plans import catalog as catalog_plan
        try:
            inv = load_inventory({str(tmp_path / 'inventory.yaml')!r}, catalog=catalog())
            catalog_plan.render_service(inv, make_smep("dynamicalsystem", "webapps", "prod", 40), "app")
        except TinsnipError as e:
            print(e)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert f"{d / name} is a FIFO" in p.stdout, p.stderr


def test_a_fifo_opened_directly_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "f")
    with pytest.raises(InputError, match="is a FIFO"):
        context.read_bytes(tmp_path, "f")


def test_a_socket_is_a_clear_error(tmp_path):
    inv, d = site(tmp_path, {"docker-compose.yml": "services: {}\n"})
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(d / "control.sock"))
        with pytest.raises(InputError, match=f"{d / 'control.sock'} is a socket"):
            catalog_plan.render_service(inv, SMEP, "app")
    finally:
        s.close()


def test_what_dockerignore_leaves_out_is_not_looked_at(tmp_path):
    inv, d = site(tmp_path, {"docker-compose.yml": "services: {}\n", ".dockerignore": ".venv\n"})
    (d / ".venv" / "bin").mkdir(parents=True)
    os.symlink("/usr/bin/python3", d / ".venv" / "bin" / "python")
    os.mkfifo(d / ".venv" / "fifo")
    r = catalog_plan.render_service(inv, SMEP, "app")
    assert r.context_files == (".dockerignore",)


def test_open_file_follows_no_link_on_the_way(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "via")
    assert context.read_text(tmp_path, "real/f") == "x"
    with pytest.raises(InputError, match="via is a link"):
        context.read_text(tmp_path, "via/f")
    with pytest.raises(InputError, match="not a path inside"):
        context.read_text(tmp_path, "../x")
