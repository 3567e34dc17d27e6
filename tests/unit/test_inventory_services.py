"""Inventory services in the long form: a service from its own folder, forwarded ports."""
import copy

import pytest
import yaml

from tinsnip_tasks.core.inventory import Service, load_inventory
from tinsnip_tasks.errors import InventoryError

BASE = {
    "sheets": {"dynamicalsystem": {"nas": "ds412plus"}},
    "nas": {"ds412plus": {"host": "ds412plus"}},
    "machines": {"gazette": {"sheet": "dynamicalsystem", "host": "homelab1",
                             "environments": ["prod"], "services": {}}},
}


def load(tmp_path, services, envs=("prod",)):
    data = copy.deepcopy(BASE)
    data["machines"]["gazette"]["services"] = services
    data["machines"]["gazette"]["environments"] = list(envs)
    (tmp_path / "inv").mkdir(exist_ok=True)
    path = tmp_path / "inv" / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path, catalog={"hello"})


@pytest.fixture
def webapp(tmp_path):
    d = tmp_path / "src" / "webapp"
    d.mkdir(parents=True)
    (d / "docker-compose.yml").write_text("services: {}\n")
    return d


def test_short_form_keeps_its_meaning(tmp_path):
    inv = load(tmp_path, {"hello": {"http": 0}})
    assert inv.machine("gazette").services["hello"] == Service("hello", {"http": 0})


def test_long_form_path_is_relative_to_the_inventory(tmp_path, webapp):
    inv = load(tmp_path, {"webapp": {"path": "../src/webapp", "ports": {"web": 3}}})
    svc = inv.machine("gazette").services["webapp"]
    assert svc.path == str(webapp)
    assert svc.ports == {"web": 3}


def test_long_form_expands_home(tmp_path, webapp, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "src"))
    inv = load(tmp_path, {"webapp": {"path": "~/webapp", "ports": {"web": 0}}})
    assert inv.machine("gazette").services["webapp"].path == str(webapp)


def test_a_folder_needs_no_catalog_entry_but_a_bare_name_does(tmp_path, webapp):
    with pytest.raises(InventoryError, match="'webapp' is not in the catalog.*path: DIR"):
        load(tmp_path, {"webapp": {"web": 0}})


def test_long_form_catalog_service_with_forward(tmp_path):
    inv = load(tmp_path, {"hello": {"ports": {"http": 0}, "forward": {80: "http"}}})
    assert inv.machine("gazette").services["hello"].forward == ((80, "http", "prod"),)


@pytest.mark.parametrize("services, envs, key, problem", [
    ({"webapp": {"path": "../nowhere", "ports": {}}}, ("prod",),
     "machines.gazette.services.webapp.path", "is not a folder"),
    ({"webapp": {"path": "../src", "ports": {}}}, ("prod",),
     "machines.gazette.services.webapp.path", "has no docker-compose.yml or docker-compose.yml.j2"),
    ({"webapp": {"path": "../src/webapp", "ports": {"web": 10}}}, ("prod",),
     "machines.gazette.services.webapp.ports.web", "use an integer 0..9"),
    ({"webapp": {"path": "../src/webapp", "port": {"web": 1}}}, ("prod",),
     "machines.gazette.services.webapp", "unknown key 'port'"),
    ({"hello": {"ports": {"http": 0}, "forward": {80: "web"}}}, ("prod",),
     "machines.gazette.services.hello.forward.80", "'web' is not one of this service's ports"),
    ({"hello": {"ports": {"http": 0}, "forward": {70000: "http"}}}, ("prod",),
     "machines.gazette.services.hello.forward.70000", "use an integer 1..65535"),
    ({"hello": {"ports": {"http": 0}, "forward": {80: "http"}}}, ("prod", "test"),
     "machines.gazette.services.hello.forward.80", "say which one gets the port"),
    ({"hello": {"ports": {"http": 0}, "forward": {80: {"to": "http", "env": "dev"}}}},
     ("prod", "test"), "machines.gazette.services.hello.forward.80", "'dev' is not one of"),
])
def test_long_form_errors_name_the_key(tmp_path, webapp, services, envs, key, problem):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, services, envs)
    assert err.value.key == key
    assert problem in err.value.problem


def test_forward_with_an_environment(tmp_path):
    inv = load(tmp_path, {"hello": {"ports": {"http": 0},
                                    "forward": {80: {"to": "http", "env": "test"}}}},
               ("prod", "test"))
    assert inv.machine("gazette").services["hello"].forward == ((80, "http", "test"),)


def test_one_owner_per_standard_port_per_host(tmp_path, webapp):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, {"hello": {"ports": {"http": 0}, "forward": {80: {"to": "http", "env": "prod"}}},
                        "other": {"path": "../src/webapp", "ports": {"web": 1},
                                  "forward": {80: {"to": "web", "env": "test"}}}},
             ("prod", "test"))
    assert err.value.key == "machines.gazette.services.other.forward.80"
    assert "port 80 of homelab1 is already forwarded for gazette-prod:hello" in err.value.problem
