"""A service from its own folder: what the deploy writes and uploads for it."""
import pytest
import yaml

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError
from tinsnip_tasks.plans import catalog as catalog_plan
from tinsnip_tasks.plans import generations

SMEP = make_smep("dynamicalsystem", "webapps", "prod", 40)


def site(tmp_path, files, ports=None, secrets=None):
    d = tmp_path / "src" / "app"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    inv = {"sheets": {"dynamicalsystem": {"nas": "n"}}, "nas": {"n": {"host": "n"}},
           "machines": {"webapps": {"sheet": "dynamicalsystem", "host": "h", "number": 40,
                                    "environments": ["prod"],
                                    "services": {"app": {"path": "src/app",
                                                         "ports": ports or {"web": 2}}}}}}
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inv))
    if secrets is not None:
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "webapps-prod.env").write_text(secrets)
        (tmp_path / "secrets" / "webapps-prod.env").chmod(0o600)
    return load_inventory(tmp_path / "inventory.yaml", catalog=catalog()), d


def test_a_plain_compose_file_is_used_as_it_is_and_service_env_follows_the_port_names(tmp_path):
    compose = "services:\n  app:\n    image: x\n    ports: ['${APP_PORT}:80']\n"
    inv, d = site(tmp_path, {"docker-compose.yml": compose,
                             "service.env": "APP_PORT=${TIN_PORT_WEB}\nHOST=${TIN_DATA_DIR}"})
    r = catalog_plan.render_service(inv, SMEP, "app")
    assert r.compose == compose and r.folder == d and not r.build
    lines = r.env.splitlines()
    assert lines[1:] == ["TIN_PORT_WEB=14002", "APP_PORT=${TIN_PORT_WEB}", "HOST=${TIN_DATA_DIR}"]
    assert r.context_files == ("service.env",)  # the compose file is written, not uploaded


def test_a_template_is_rendered_with_the_catalog_context_and_build_is_seen(tmp_path):
    inv, _ = site(tmp_path, {
        "docker-compose.yml.j2": "services:\n  app:\n    build: .\n"
                                 "    ports: ['${TIN_PORT_{{ ports.web }}}:80']  # {{ smep.label }}\n",
        "Dockerfile": "FROM x\n", "service.yaml": "ports: [web]\nsecrets: [TOKEN]\n"},
        secrets="TOKEN='a b$c'\n")
    r = catalog_plan.render_service(inv, SMEP, "app")
    assert "['${TIN_PORT_2}:80']  # dynamicalsystem/webapps/prod" in r.compose and r.build
    assert r.env.endswith("TOKEN='a b$c'\n")  # literal for bash and compose alike
    assert r.context_files == ("Dockerfile", "service.yaml")


def test_the_stamp_follows_the_context(tmp_path):
    inv, d = site(tmp_path, {"docker-compose.yml": "services: {}\n", "app.py": "1\n"})
    first = generations.stamp(SMEP, catalog_plan.render_service(inv, SMEP, "app"))
    assert generations.stamp(SMEP, catalog_plan.render_service(inv, SMEP, "app")) == first
    (d / "app.py").write_text("2\n")
    assert generations.stamp(SMEP, catalog_plan.render_service(inv, SMEP, "app")) != first


@pytest.mark.parametrize("files, secrets, message", [
    ({"docker-compose.yml": "services: {}\n", "service.yaml": "ports: [web, api]\n"}, None,
     "must map the port names api"),
    ({"docker-compose.yml": "services: {}\n", "service.yaml": "secrets: [TOKEN]\n"}, "TOKEN=it's $x\n",
     "TOKEN would not read the same in bash, docker compose and tinsnip"),
    ({"docker-compose.yml": "services: {}\n", "service.env": "A = b c\n"}, None,
     "not a KEY=value line"),
    ({"docker-compose.yml": "services: [\n"}, None, "is not valid YAML"),
])
def test_bad_folders_are_refused_before_any_host(tmp_path, files, secrets, message):
    inv, _ = site(tmp_path, files, secrets=secrets)
    with pytest.raises(InputError, match=message):
        catalog_plan.render_service(inv, SMEP, "app")
