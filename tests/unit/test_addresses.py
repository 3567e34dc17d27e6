"""Addresses the hosts use for each other: the inventory's ``address:``, else the HostName the
operator's SSH config gives for an alias, else the name; checked whole."""

import pytest

from tinsnip_tasks.connect import SshProfile
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.core.target import check_address, host_address
from tinsnip_tasks.errors import InputError, InventoryError
from tinsnip_tasks.plans import Target, machine, nas

INVENTORY = """
sheets:
  home: {{nas: nas1}}
nas:
  nas1: {{host: admin@nas_main{nas_address}}}
machines:
  box:
    sheet: home
    host: box1
    environments: [prod]
    number: 4{box_address}
  other:
    sheet: home
    host: "root@box2:2222"
    environments: [prod]
    number: 5
"""
SSH_CONFIG = """
Host nas_main
    HostName 192.168.1.10
Host box1
    HostName box1.home.arpa
Host bad
    HostName "two words"
"""


def inventory(tmp_path, nas_address="", box_address=""):
    p = tmp_path / "inventory.yaml"
    p.write_text(INVENTORY.format(
        nas_address=f", address: '{nas_address}'" if nas_address else "",
        box_address=f"\n    address: '{box_address}'" if box_address else ""))
    return load_inventory(p)


@pytest.fixture
def resolve(tmp_path):
    (tmp_path / "ssh_config").write_text(SSH_CONFIG)
    return SshProfile(ssh_config=str(tmp_path / "ssh_config")).resolver()


def lines(inv):
    t = Target(inv, make_smep("home", "box", "prod", 4))
    [export] = nas.export(t)
    fstab = next(r for r in machine.mount(t) if getattr(r, "path", "") == "/etc/fstab")
    return export.edit("").splitlines()[1], fstab.edit("").splitlines()[-1]


@pytest.mark.parametrize("value", ["192.168.1.20", "fd00::20", "nas.lan", "nas", "NAS-1.home.arpa.",
                                   "::1"])
def test_addresses_accepted(value):
    assert check_address(value) == value


@pytest.mark.parametrize("value", ["", "nas lan", "nas.lan\n", "-nas", "nas_main", "[fd00::1]",
                                   "fe80::1%eth0", "10.0.0.1:2049", "1.2.3", "a" * 64 + ".lan",
                                   "box;reboot", 42, None])
def test_addresses_refused(value):
    with pytest.raises(InputError, match="is not an address"):
        check_address(value)


def test_the_ssh_config_hostname_names_the_hosts(tmp_path, resolve):
    inv = inventory(tmp_path).with_addresses(resolve)
    export, fstab = lines(inv)
    assert export.split()[1].startswith("box1.home.arpa(rw,")
    assert fstab.startswith("192.168.1.10:/volume1/home/box/prod /var/lib/tinsnip/box-prod/nfs nfs ")
    # a host the SSH config does not know keeps its name
    assert inv.station("home", "prod").clients == ("box1.home.arpa", "box2")


def test_the_inventory_address_wins(tmp_path, resolve):
    inv = inventory(tmp_path, nas_address="fd00::10", box_address="10.0.0.20").with_addresses(resolve)
    export, fstab = lines(inv)
    assert export.split()[1].startswith("10.0.0.20(rw,")
    assert fstab.startswith("[fd00::10]:/volume1/home/box/prod ")


def test_without_ssh_config_the_name_is_used(tmp_path):
    export, fstab = lines(inventory(tmp_path))
    assert export.split()[1].startswith("box1(rw,") and fstab.startswith("nas_main:/volume1/")


def test_a_hostname_that_is_no_address_is_refused(resolve):
    with pytest.raises(InputError, match="HostName 'two words' for 'bad'.*set address:"):
        host_address("bad", resolve)


def test_a_bad_address_in_the_inventory_names_the_key(tmp_path):
    with pytest.raises(InventoryError, match=r"machines\.box\.address: 'box 1' is not an address"):
        inventory(tmp_path, box_address="box 1")


def test_a_missing_ssh_config_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nothere .tinsnip.ssh_config. does not exist"):
        SshProfile(ssh_config=str(tmp_path / "nothere")).resolver()
