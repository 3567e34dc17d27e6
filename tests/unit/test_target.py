"""SSH targets and names: every form OpenSSH accepts, nothing more, and only whole values."""
import pytest
import yaml

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.smep import validate_name
from tinsnip_tasks.core.target import address_of, check_target, nfs_server, split_target
from tinsnip_tasks.errors import InputError, InventoryError
from tinsnip_tasks.plans import machine, nas

# target -> (user, host, port)
GOOD = {
    "homelab1": (None, "homelab1", None),
    "nas_main": (None, "nas_main", None),
    "root@homelab1:2999": ("root", "homelab1", 2999),
    "Admin@nas.lan": ("Admin", "nas.lan", None),
    "10.0.0.2": (None, "10.0.0.2", None),
    "10.0.0.2:22": (None, "10.0.0.2", 22),
    "::1": (None, "::1", None),
    "fe80::1": (None, "fe80::1", None),
    "[::1]": (None, "::1", None),
    "[::1]:2222": (None, "::1", 2222),
    "user@[fe80::1]": ("user", "fe80::1", None),
    "user@[2001:db8::7]:22": ("user", "2001:db8::7", 22),
}

BAD = ["homelab1\n", "homelab1\n\n", "-oProxyCommand=x", "homelab1; reboot", "a b", "",
       "[::1", "[::1]x", "[nas]:22", "::1::2", "fe80::1%eth0", "root@-x", "@homelab1",
       "homelab1:0", "homelab1:70000", "homelab1:", "host:22:33", "us er@h", "h\tx",
       "$(id)", "`id`", "h*", "h/..", "ünïcode", "root@@h"]


@pytest.mark.parametrize("target", GOOD)
def test_every_form_openssh_takes_is_accepted_and_split(target):
    assert check_target(target) == target
    assert split_target(target) == GOOD[target]
    assert address_of(target) == GOOD[target][1]


@pytest.mark.parametrize("target", BAD, ids=repr)
def test_anything_else_is_refused(target):
    with pytest.raises(InputError, match="SSH target|port must be"):
        check_target(target)


@pytest.mark.parametrize("value", ["gazette\n", "gazette\n\n", "gaz\nette", " gazette",
                                   "Gazette", "-gazette", "gazette$"], ids=repr)
def test_names_must_match_whole(value):
    with pytest.raises(InputError):
        validate_name("machine", value)


def inventory(tmp_path, nas_host="ds412plus", machine_host="homelab1"):
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({
        "sheets": {"dynamicalsystem": {"nas": "ds412plus"}},
        "nas": {"ds412plus": {"host": nas_host}},
        "machines": {"gazette": {"sheet": "dynamicalsystem", "host": machine_host,
                                 "environments": ["prod"]}}}))
    return path


@pytest.mark.parametrize("target", GOOD)
def test_the_inventory_takes_every_form(tmp_path, target):
    inv = load_inventory(inventory(tmp_path, nas_host=target, machine_host=target))
    me = inv.machine_env("gazette", "prod")
    assert me.nas_address == me.client == GOOD[target][1]


def test_a_block_scalar_host_ending_in_newline_is_refused(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory(tmp_path).read_text().replace("host: homelab1", "host: |\n      homelab1"))
    assert yaml.safe_load(path.read_text())["machines"]["gazette"]["host"] == "homelab1\n"
    with pytest.raises(InventoryError, match=r"machines\.gazette\.host: 'homelab1\\n' is not an SSH"):
        load_inventory(path)


def test_ipv6_is_written_as_exports_and_fstab_want_it(tmp_path):
    from tinsnip_tasks.plans import Target

    inv = load_inventory(inventory(tmp_path, nas_host="root@[fd00::10]:22",
                                   machine_host="admin@[fd00::21]"))
    t = Target(inv, inv.smep("gazette", "prod"))
    export = nas.export(t)[0].edit("")
    assert export.startswith("# tinsnip: /volume1/dynamicalsystem/gazette/prod\n"
                             "/volume1/dynamicalsystem/gazette/prod fd00::21(rw,")
    edited, mounted = (next(r for r in machine.mount(t) if type(r).__name__ == kind)
                       for kind in ("Edited", "Mounted"))
    fstab = edited.edit("")
    assert fstab == ("# tinsnip: /var/lib/tinsnip/gazette-prod/nfs\n[fd00::10]:/volume1/dynamicalsystem/"
                     f"gazette/prod /var/lib/tinsnip/gazette-prod/nfs nfs {machine.MOUNT_OPTIONS} 0 0\n")
    assert mounted.source == "[fd00::10]:/volume1/dynamicalsystem/gazette/prod"
    assert nfs_server("nas.lan") == "nas.lan"
