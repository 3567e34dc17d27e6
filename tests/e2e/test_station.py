"""The sheet's station: machine registry on the NAS, exported read-only to every machine host."""
import pytest

from tinsnip_tasks.core import registry as reg

STATION = "/volume1/dynamicalsystem/station/prod"


@pytest.fixture(scope="module")
def station(lab, cli):
    first = cli.inv("nas.station", "--sheet", "dynamicalsystem")
    return first, cli.inv("nas.station", "--sheet", "dynamicalsystem")


def test_station_folder_registry_and_export(lab, station):
    first, again = station
    assert "changed=0" in again.stdout and "failed=0" in first.stdout
    assert lab.run("ds412plus", f"stat -c '%u %a' {STATION}").stdout.split() == ["10000", "755"]
    registry = reg.parse_registry(lab.read("ds412plus", f"{STATION}/machine-registry"))
    assert registry["gazette"] == 1 and registry["lldap"] == 2
    # the clients by the addresses the SSH config gives for the hosts' aliases
    clients = sorted(lab.ip(h) for h in ("homelab1", "homelab2", "homelab3"))
    assert (f"{STATION} " + " ".join(
        f"{ip}(ro,sync,all_squash,anonuid=10000,anongid=10000,no_subtree_check)" for ip in clients)
            ) in lab.read("ds412plus", "/etc/exports").splitlines()


@pytest.mark.parametrize("host", ["homelab1", "homelab2", "homelab3"])
def test_every_machine_host_reads_the_registry_and_cannot_write(lab, station, host):
    lab.run(host, "mkdir -p /tmp/station")
    lab.run(host, f"mount -t nfs ds412plus:{STATION} /tmp/station")
    try:
        assert "gazette=01" in lab.run(host, "cat /tmp/station/machine-registry").stdout
        assert "Read-only" in lab.run(host, "touch /tmp/station/x 2>&1", warn=True).stdout
    finally:
        lab.run(host, "umount /tmp/station", warn=True)


def test_an_existing_registry_is_kept(lab, cli, station):
    path = f"{STATION}/machine-registry"
    before = lab.read("ds412plus", path)
    lab.run("ds412plus", f"echo billing=09 >> {path}")
    try:
        assert "changed=0" in cli.inv("nas.station", "--sheet", "dynamicalsystem").stdout
        assert "billing=09" in lab.read("ds412plus", path)
    finally:
        lab.run("ds412plus", f"printf %s {__import__('shlex').quote(before)} > {path}")


RACE = "/volume1/racesheet/station/prod/machine-registry"


def test_a_pin_goes_into_the_registry_and_a_bad_registry_stops_setups(lab, e2e_cli):
    """crashy is pinned to 07 in the e2e inventory: its setup writes it in, and a registry
    giving 00 to a machine is refused before anything else happens."""
    before = lab.run("ds412plus", f"cat {RACE} 2>/dev/null", warn=True).stdout
    try:
        lab.run("ds412plus", f"mkdir -p $(dirname {RACE}) && printf 'gazette=01\\r\\nledger = 4' > {RACE}")
        e2e_cli.inv("nas.setup", "--machine", "crashy", "--env", "prod")
        assert lab.read("ds412plus", RACE) == "gazette=01\nledger=04\ncrashy=07\n"
        lab.run("ds412plus", f"echo relay=00 >> {RACE}")
        bad = e2e_cli.inv("nas.setup", "--machine", "mailer", "--env", "prod", check=False)
        assert bad.returncode != 0
        assert "00 belongs to the station, not 'relay'" in bad.stdout + bad.stderr
        assert "mailer" not in lab.read("ds412plus", RACE)
    finally:
        lab.run("ds412plus", f"printf %s {__import__('shlex').quote(before)} > {RACE}")
