"""--limit patterns and the site plan: pure, from the inventory in tests/e2e/data/site.yaml."""
from pathlib import Path

import pytest

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.limit import Item, parse_limit, select
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError
from tinsnip_tasks.plans import Target, site, status

SITE = Path(__file__).resolve().parents[1] / "e2e" / "data" / "site.yaml"
ITEMS = [Item("homelab1", "web", "prod"), Item("homelab1", "web", "prod", "hello"),
         Item("homelab1", "web", "test"), Item("homelab2", "mail", "prod"),
         Item("homelab2", "mail", "prod", "hello"), Item("homelab2", "cache", "prod")]


def names(items):
    return [f"{i.machine}:{i.env}" + (f":{i.service}" if i.service else "") for i in items]


@pytest.mark.parametrize("limit, wanted", [
    ("", ["web:prod", "web:prod:hello", "web:test", "mail:prod", "mail:prod:hello", "cache:prod"]),
    ("homelab1", ["web:prod", "web:prod:hello", "web:test"]),
    ("web:test,cache", ["web:test", "cache:prod"]),
    ("hello", ["web:prod:hello", "mail:prod:hello"]),
    ("*:prod,!mail", ["web:prod", "web:prod:hello", "cache:prod"]),
    ("!homelab1", ["mail:prod", "mail:prod:hello", "cache:prod"]),
    ("homelab?,&*:test", ["web:test"]),
    ("nothing*", []),
], ids=["all", "host", "machine-env-and-machine", "service", "glob-exclude", "only-exclude",
        "intersect", "glob-matching-nothing"])
def test_limit_patterns(limit, wanted):
    assert names(select(ITEMS, parse_limit(limit))) == wanted


@pytest.mark.parametrize("limit, message", [
    ("webb", "'webb' matches no host"),
    ("web,,cache", "'' is not a pattern"),
    ("web;reboot", "is not a pattern"),
    ("!", "is not a pattern"),
])
def test_bad_limits_are_refused(limit, message):
    with pytest.raises(InputError, match=message):
        select(ITEMS, parse_limit(limit))


@pytest.fixture
def inv():
    return load_inventory(SITE, catalog=catalog())


def targets(inv, sel):
    numbers = {"web": 4, "mail": 5, "cache": 6}
    return {(m, e): Target(inv, make_smep("sitesheet", m, e, numbers[m], pinned_sheet_no=5))
            for m, e in sel.envs}


def test_a_service_brings_its_machine_environment_along(inv):
    sel = site.select(inv, "hello,&mail:*")
    assert sel.envs == [("mail", "prod"), ("mail", "test")]
    assert sel.services == {("mail", "prod"): ["hello"], ("mail", "test"): ["hello"]}
    assert site.select(inv, "cache").services == {("cache", "prod"): []}


def test_a_limit_selecting_nothing_is_refused(inv):
    with pytest.raises(InputError, match="selects nothing"):
        site.select(inv, "web,!homelab1")


def test_nas_steps_stations_first_then_tree_and_export_per_environment(inv):
    sel = site.select(inv, "web,cache")
    steps = site.nas_steps(inv, sel, targets(inv, sel))
    assert list(steps) == ["ds412plus"]
    assert [(s.name, s.label) for s in steps["ds412plus"]] == [
        ("nas.station", "station-prod"), ("nas.station", "station-test"),
        ("nas.tree", "web-prod"), ("nas.export", "web-prod"),
        ("nas.tree", "web-test"), ("nas.export", "web-test"),
        ("nas.tree", "cache-prod"), ("nas.export", "cache-prod")]


def test_no_test_station_when_no_test_environment_is_selected(inv):
    assert site.stations(inv, site.select(inv, "*:prod")) == [("sitesheet", "prod")]


def test_machine_steps_per_host_in_the_seeds_order(inv):
    sel = site.select(inv, "homelab2,!mail:test")
    steps = site.machine_steps(inv, sel, targets(inv, sel))
    assert list(steps) == ["homelab2"]
    setup = ["machine.user", "machine.mount", "xdg.link", "machine.docker-config",
             "machine.docker", "machine.env"]
    # no build context, no image archive, no forwards
    deploy = ["service.generation", "service.files", "service.up"]
    assert [(s.name, s.label) for s in steps["homelab2"]] == (
        [(n, "mail-prod") for n in setup] + [(n, "mail-prod hello") for n in deploy]
        + [(n, "cache-prod") for n in setup])
    up = [s for s in steps["homelab2"] if s.name == "service.up"][0]
    assert up.scope == "mail-prod" and "machine.mount" in up.needs and up.before is not None
    assert up.after is not None  # the health gate
    pulled = site.machine_steps(inv, sel, targets(inv, sel), pull=True)["homelab2"]
    assert [s.name for s in pulled if s.label == "mail-prod hello"] == [
        "service.pull", "service.generation", "service.files", "service.up"]
    assert "service.pull" in up.needs


def test_status_without_services_needs_no_containers():
    smep = make_smep("sitesheet", "cache", "prod", 6, pinned_sheet_no=5)
    facts = status.parse("@daemon 0 20.10\n@write user:data 0\n@listen 22")
    result = {item: ok for item, ok, _ in status.evaluate(facts, smep)}
    assert result["environment"]
    deployed = status.parse("@daemon 0 20.10\n@compose\thello\t0\t\n@write user:data 0")
    assert not {item: ok for item, ok, _ in status.evaluate(deployed, smep)}["environment"]
