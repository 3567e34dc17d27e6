"""Templates render strictly: a missing variable is an error naming the template and variable."""
import pytest

from tinsnip_tasks.core.render import catalog, render
from tinsnip_tasks.errors import TemplateError


def test_missing_variable_names_it_and_the_template(tmp_path):
    (tmp_path / "t.j2").write_text("A={{ alpha }} B={{ beta }}\n")
    with pytest.raises(TemplateError, match=r"'t.j2'.*'beta' is undefined"):
        render("t.j2", {"alpha": 1}, root=tmp_path)


def test_missing_template_is_named(tmp_path):
    with pytest.raises(TemplateError, match="'nope.j2' not found"):
        render("nope.j2", {}, root=tmp_path)


def test_syntax_error_gives_the_line(tmp_path):
    (tmp_path / "bad.j2").write_text("ok\n{% if %}\n")
    with pytest.raises(TemplateError, match="line 2"):
        render("bad.j2", {}, root=tmp_path)


def test_trailing_newline_kept(tmp_path):
    (tmp_path / "n.j2").write_text("x\n")
    assert render("n.j2", {}, root=tmp_path) == "x\n"


def test_catalog_lists_shipped_services():
    assert {"hello", "lldap", "gazette"} <= catalog()


def test_service_makefile_has_the_seed_targets():
    text = render("Makefile.j2", {"sheet": "s", "machine": "gazette", "env": "prod", "service": "hello"})
    for target in ("setup:", "deploy:", "setup-xdg-links:"):
        assert target in text
    assert "$(INV) service.deploy --machine $(TIN_MACHINE) --env $(TIN_ENV) --service $(TIN_SERVICE)" in text


def test_python_uv_templates_install_non_editable():
    docker = render("python-uv/Dockerfile.j2", {"package": "myservice", "container_port": 10700})
    assert "uv sync --frozen --no-install-workspace" in docker
    assert "uv pip install --no-deps ./myservice/" in docker
    assert 'CMD [".venv/bin/gunicorn"' in docker
    compose = render("python-uv/docker-compose.yml.j2", {"service": "myservice", "container_port": 10700})
    assert 'user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"' in compose and "env_file:" in compose


def test_a_service_folders_template_is_read_again_at_every_render(tmp_path):
    (tmp_path / "t.j2").write_text("one {{ x }}\n")
    assert render("t.j2", {"x": 1}, root=tmp_path, folder=True) == "one 1\n"
    assert render("t.j2", {"x": 2}, root=tmp_path, folder=True) == "one 2\n"
    (tmp_path / "t.j2").write_text("two {{ x }}\n")  # same size, same second: still seen
    assert render("t.j2", {"x": 3}, root=tmp_path, folder=True) == "two 3\n"
