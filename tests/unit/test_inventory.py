"""Inventory loading: the reference file, the look-ups, and one test per error kind."""

import copy
from pathlib import Path

import pytest
import yaml

from tinsnip_tasks.core.inventory import (DockerSettings, Machine, Nas, Service, Sheet,
                                         load_inventory)
from tinsnip_tasks.errors import InputError, InventoryError, SmepError

REPO_INVENTORY = Path(__file__).resolve().parents[2] / "inventory.yaml"

BASE = {
    "sheets": {"dynamicalsystem": {"nas": "ds412plus", "volume": "/volume1"}},
    "nas": {"ds412plus": {"host": "ds412plus"}},
    "machines": {
        "gazette": {
            "sheet": "dynamicalsystem",
            "host": "homelab1",
            "environments": ["prod", "test"],
            "services": {"hello": {"http": 0}, "gazette": {"web": 0, "api": 1, "metrics": 2}},
        },
        "lldap": {
            "sheet": "dynamicalsystem",
            "host": "homelab2",
            "environments": ["prod"],
            "services": {"lldap": {"ldap": 0, "web": 1}},
        },
        "gateway": {
            "sheet": "dynamicalsystem",
            "host": "homelab3",
            "environments": ["prod"],
            "services": {"hello": {"http": 0}},
        },
    },
}


def write(tmp_path, data=None, text=None):
    path = tmp_path / "inventory.yaml"
    # a value shared by two keys is written out twice: the inventory refuses YAML aliases
    path.write_text(text if text is not None else yaml.safe_dump(_no_aliases(data),
                                                                  sort_keys=False))
    return path


def _no_aliases(data):
    if isinstance(data, dict):
        return {k: _no_aliases(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_no_aliases(v) for v in data]
    return data


def variant(change):
    data = copy.deepcopy(BASE)
    change(data)
    return data


@pytest.fixture
def inv():
    return load_inventory(REPO_INVENTORY)


def test_reference_inventory_loads(inv):
    assert inv.sheets["dynamicalsystem"] == Sheet(
        "dynamicalsystem", "ds412plus", "/volume1", None,
        "{volume}/{sheet}/station/{env}/machine-registry",
        DockerSettings(("http://ds412plus:5000",), ("ds412plus:5000",)),
    )
    assert inv.sheets["dynamicalsystem"].resolved_number == 1
    assert inv.machine("gazette") == Machine(
        "gazette", "dynamicalsystem", "homelab1", ("prod", "test"), None,
        {"hello": Service("hello", {"http": 0}),
         "gazette": Service("gazette", {"web": 0, "api": 1, "metrics": 2})},
    )
    assert inv.nas_of("lldap") == Nas("ds412plus", "ds412plus")


def test_reference_matches_base(tmp_path):
    assert load_inventory(REPO_INVENTORY).machines == load_inventory(write(tmp_path, BASE)).machines


def test_smep_from_defaults_and_registry(inv):
    assert inv.smep("gazette", "test").uid == 10110
    assert inv.smep("lldap", "prod").ports == list(range(10200, 10210))
    assert inv.smep("gazette", "prod", {"gazette": 9}).uid == 10900


def test_smep_without_number_points_at_machine_setup(inv):
    with pytest.raises(InputError, match=r"no number yet.*machine\.setup.*machine-registry"):
        inv.smep("gazette", "prod", {"web": 4})


def test_an_empty_registry_is_not_authoritative(inv):
    assert inv.smep("gazette", "prod", {}).machine_no == 1
    assert inv.smep("gazette", "prod", {"station": 0}).machine_no == 1


def _web(number):
    def change(d):
        d["machines"]["web"] = {"sheet": "dynamicalsystem", "host": "homelab2",
                                "environments": ["prod"], "number": number}
    return change


def test_pinned_machine_number_wins(tmp_path):
    inv = load_inventory(write(tmp_path, variant(_web(5))))
    assert inv.smep("web", "prod", {}).uid == 10500
    assert inv.smep("web", "prod", {"gazette": 1, "web": 5}).uid == 10500
    assert inv.pins("dynamicalsystem") == {5: "web"}
    with pytest.raises(InputError, match="gives 05 to 'blog'"):
        inv.smep("web", "prod", {"blog": 5})
    with pytest.raises(InputError, match="gives it 06"):
        inv.smep("web", "prod", {"web": 6})


def test_lookups(inv):
    assert inv.registry_path("dynamicalsystem", "test") == (
        "/volume1/dynamicalsystem/station/test/machine-registry"
    )
    assert inv.export_dir("gazette", "test") == "/volume1/dynamicalsystem/gazette/test"
    assert inv.sheet_of("gazette").name == "dynamicalsystem"
    inv.check_env("gazette", "test")


def test_unknown_machine_lists_known(inv):
    with pytest.raises(InputError, match="known machines: gateway, gazette, lldap"):
        inv.machine("web")


def test_env_not_on_machine(inv):
    with pytest.raises(InputError, match="no 'test' environment.*it has: prod"):
        inv.check_env("lldap", "test")
    with pytest.raises(SmepError, match="use one of prod, test"):
        inv.check_env("lldap", "prd")


def test_default_path_is_the_current_folders(tmp_path, monkeypatch):
    """The loader reads the file it is given (the setting tinsnip.inventory, which
    TINSNIP_INVENTORY also sets, names it: config.read); without one, ./inventory.yaml."""
    write(tmp_path, BASE)
    monkeypatch.setenv("TINSNIP_INVENTORY", "/nonexistent/inventory.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_inventory().path == "inventory.yaml"


def test_pinned_sheet_and_custom_registry(tmp_path):
    data = variant(lambda d: d["sheets"]["dynamicalsystem"].update(
        number=2, volume="/volume2", registry="{volume}/registries/{sheet}-{env}"))
    inv = load_inventory(write(tmp_path, data))
    assert inv.smep("gazette", "test").uid == 20110
    assert inv.registry_path("dynamicalsystem", "prod") == "/volume2/registries/dynamicalsystem-prod"


def test_catalog_accepts_known_services(tmp_path):
    load_inventory(write(tmp_path, BASE), catalog={"hello", "gazette", "lldap"})


def _add_mycompany(d):
    d["sheets"]["mycompany"] = {"nas": "ds412plus"}
    d["machines"]["gazette"]["sheet"] = "mycompany"


# One case per kind of error: (id, change to BASE, dotted key, text in the problem).
ERRORS = [
    ("unknown-top-key", lambda d: d.update(hosts={}), None, "unknown key 'hosts'; allowed keys: sheets, nas, machines"),
    ("unknown-machine-key", lambda d: d["machines"]["gazette"].update(port=1),
     "machines.gazette", "unknown key 'port'; allowed keys: sheet, host, address, environments, number, services"),
    ("unknown-sheet-key", lambda d: d["sheets"]["dynamicalsystem"].update(nfs=1),
     "sheets.dynamicalsystem", "allowed keys: nas, volume, number, registry"),
    ("unknown-nas-key", lambda d: d["nas"]["ds412plus"].update(user="root"),
     "nas.ds412plus", "allowed keys: host, address"),
    ("missing-host", lambda d: d["machines"]["gazette"].pop("host"), "machines.gazette.host", "is required"),
    ("not-a-mapping", lambda d: d.update(machines=["gazette"]), "machines", "expected a mapping, got a list"),
    ("bad-machine-name", lambda d: d["machines"].update(Web=d["machines"].pop("lldap")),
     "machines.Web", "machine name 'Web' is not valid"),
    ("bad-sheet-name", lambda d: d["sheets"].update(my_sheet={"nas": "ds412plus"}),
     "sheets.my_sheet", "sheet name 'my_sheet' is not valid"),
    ("bad-port-name", lambda d: d["machines"]["lldap"]["services"]["lldap"].update(Web=2),
     "machines.lldap.services.lldap.Web", "port name 'Web' is not valid"),
    ("unknown-nas", lambda d: d["sheets"]["dynamicalsystem"].update(nas="ds918"),
     "sheets.dynamicalsystem.nas", "'ds918' is not defined under nas: (defined: ds412plus)"),
    ("unknown-sheet", lambda d: d["machines"]["gazette"].update(sheet="acme"),
     "machines.gazette.sheet", "'acme' is not defined under sheets: (defined: dynamicalsystem)"),
    ("retired-kind", lambda d: d["nas"]["ds412plus"].update(kind="synology"),
     "nas.ds412plus.kind", "tinsnip treats every NAS alike"),
    ("bad-nas-address", lambda d: d["nas"]["ds412plus"].update(address="nas lan"),
     "nas.ds412plus.address", "'nas lan' is not an address"),
    ("bad-machine-address", lambda d: d["machines"]["gazette"].update(address="10.0.0.1\n"),
     "machines.gazette.address", "is not an address"),
    ("bad-env", lambda d: d["machines"]["gazette"].update(environments=["prod", "prd"]),
     "machines.gazette.environments[1]", "'prd' is not an environment; use one of prod, test, dev"),
    ("env-twice", lambda d: d["machines"]["gazette"].update(environments=["prod", "prod"]),
     "machines.gazette.environments[1]", "listed twice"),
    ("no-envs", lambda d: d["machines"]["gazette"].update(environments=[]),
     "machines.gazette.environments", "non-empty list"),
    ("port-index-range", lambda d: d["machines"]["gazette"]["services"]["hello"].update(http=10),
     "machines.gazette.services.hello.http", "use an integer 0..9"),
    ("port-index-twice", lambda d: d["machines"]["gazette"]["services"]["gazette"].update(metrics=1),
     "machines.gazette.services.gazette.metrics", "index 1 is already used by 'api'"),
    ("volume-relative", lambda d: d["sheets"]["dynamicalsystem"].update(volume="volume1"),
     "sheets.dynamicalsystem.volume", "absolute path"),
    ("volume-dotdot", lambda d: d["sheets"]["dynamicalsystem"].update(volume="/volume1/../etc"),
     "sheets.dynamicalsystem.volume", "absolute path"),
    ("registry-placeholder", lambda d: d["sheets"]["dynamicalsystem"].update(registry="{volume}/{machine}"),
     "sheets.dynamicalsystem.registry", "only {volume}, {sheet} and {env}"),
    ("sheet-pin-range", lambda d: d["sheets"]["dynamicalsystem"].update(number=10),
     "sheets.dynamicalsystem.number", "use an integer 1..9"),
    ("sheet-numbers-clash", lambda d: d["sheets"].update(acmecorp={"nas": "ds412plus", "number": 1}),
     "sheets.acmecorp", "sheets 'dynamicalsystem' and 'acmecorp' both get number 1; pin one of them to a free number (sheets: dynamicalsystem: number: N; free: 2, 3"),
    ("machine-pin-range", lambda d: d["machines"]["gazette"].update(number=100),
     "machines.gazette.number", "use an integer 0..99"),
    ("machine-pin-zero", _web(0), "machines.web.number", "00, which belongs to the station"),
    ("machine-pin-zero-default", lambda d: d["machines"]["gazette"].update(number=0),
     "machines.gazette.number", "00, which belongs to the station"),
    ("machine-pin-takes-default", _web(2),
     "machines.web.number", "the built-in defaults gives 02 to 'lldap'"),
    ("default-machine-pinned-elsewhere", lambda d: d["machines"]["gazette"].update(number=7),
     "machines.gazette.number", "pinned to 07 in the inventory but the built-in defaults gives it 01"),
    ("machine-pins-clash", lambda d: (_web(7)(d), d["machines"].update(blog={
        **d["machines"]["web"]})),
     "machines.blog.number", "already pinned for 'web'"),
    ("station-is-reserved", lambda d: d["machines"].update(station={
        "sheet": "dynamicalsystem", "host": "nas", "environments": ["prod"]}),
     "machines.station", "'station' is reserved"),
    ("bad-ssh-target", lambda d: d["machines"]["gazette"].update(host="homelab1; reboot"),
     "machines.gazette.host", "is not an SSH target"),
    ("port-too-high", _add_mycompany,
     "machines.gazette", "port 70100 is outside 1024..65535. Pin the sheet's number"),
]


@pytest.mark.parametrize("change, key, problem", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_inventory_errors(tmp_path, change, key, problem):
    path = write(tmp_path, variant(change))
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert err.value.path == str(path)
    assert err.value.key == key or (key is None and not err.value.key)
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{path}: ")


def test_unknown_service_lists_catalog(tmp_path):
    with pytest.raises(InventoryError) as err:
        load_inventory(write(tmp_path, BASE), catalog={"gazette", "lldap"})
    assert err.value.key == "machines.gazette.services.hello"
    assert "available: gazette, lldap" in err.value.problem


def test_default_machine_pinned_to_its_default_is_fine(tmp_path):
    data = variant(lambda d: d["machines"]["gazette"].update(number=1))
    assert load_inventory(write(tmp_path, data)).smep("gazette", "test").uid == 10110


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "is empty"),
        ("- a\n- b\n", "holds a list"),
        ("sheets: [unclosed\n", "is not valid YAML: line 2"),
        ("machines: {}\nmachines: {}\n", "'machines' appears twice"),
    ],
    ids=["empty", "list", "bad-yaml", "duplicate-key"],
)
def test_file_level_errors(tmp_path, text, problem):
    with pytest.raises(InventoryError) as err:
        load_inventory(write(tmp_path, text=text))
    assert problem in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InventoryError, match="no such file.*TINSNIP_INVENTORY"):
        load_inventory(tmp_path / "nope.yaml")
