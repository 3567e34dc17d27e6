"""service.forward and the inventory's forward: entries: a forward goes to this environment's own
ports only; the listening port is neither the host's SSH port nor in a SMEP range of the host
(checked from the inventory, before any host), nor a port the host's sshd listens on (read on
the host)."""
import subprocess

import pytest
import yaml

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.errors import ConflictError, InputError, InventoryError
from tinsnip_tasks.ops.forward import SSHD_COMMAND, Forward, parse_sshd
from tinsnip_tasks.plans import forwards

from test_cli import UNREACHABLE, run

# ss -Hltnp as iproute2 6.1 prints it, with a process that is not sshd on 2222
SS = """\
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    users:(("sshd",pid=1,fd=3))
LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=1,fd=4))
LISTEN 0      4096         0.0.0.0:10100     0.0.0.0:*    users:(("rootlesskit",pid=88,fd=9))
"""
INV = {
    "sheets": {"dynamicalsystem": {"nas": "n"}, "racesheet": {"nas": "n", "number": 2}},
    "nas": {"n": {"host": "nas1.invalid"}},
    "machines": {
        "gazette": {"sheet": "dynamicalsystem", "host": "box1.invalid",
                    "environments": ["prod", "test"], "services": {"hello": {"http": 0}}},
        "ledger": {"sheet": "racesheet", "host": "root@box1.invalid", "environments": ["prod"],
                   "number": 5},
        "other": {"sheet": "racesheet", "host": "box2.invalid:2222", "environments": ["prod"],
                  "number": 6, "services": {"hello": {"http": 0}}}}}


@pytest.fixture
def inv(tmp_path):
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(INV))
    return load_inventory(tmp_path / "inventory.yaml")


def test_sshd_ports_are_read_from_ss_and_the_config():
    assert parse_sshd("".join(f"listen {l.split()[3]}\n" for l in SS.splitlines()
                              if '"sshd"' in l) + "port 2200\n") == {22, 2200}


def test_the_sshd_command_reads_ss_as_captured(tmp_path):
    (tmp_path / "ss").write_text(f"#!/bin/sh\ncat <<'EOF'\n{SS}EOF\n")
    (tmp_path / "ss").chmod(0o755)
    out = subprocess.run(["sh", "-c", SSHD_COMMAND], capture_output=True, text=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout
    assert parse_sshd(out.split("@@sshd\n", 1)[1]) == {22}


def test_a_forward_of_a_port_sshd_listens_on_is_refused_on_the_host():
    with pytest.raises(ConflictError, match="sshd listens on port 22: .* lock you out"):
        Forward(22, 10100, "gazette-prod:hello").plan("@@sshd\nlisten 0.0.0.0:22\n")
    assert Forward(2222, 10100, "gazette-prod:hello").plan("@@sshd\nlisten 0.0.0.0:22\n")
    assert Forward(22, None, "gazette-prod:hello").plan("") == []  # removing is always fine


@pytest.mark.parametrize("port, why", [
    (10110, "gazette-test's port TIN_PORT_0"),
    (10105, "gazette-prod's port TIN_PORT_5"),
    (10150, "in sheet dynamicalsystem's SMEP range 10000..19999"),
    (20509, "ledger-prod's port TIN_PORT_9"),  # another sheet's machine on the same host
    (20777, "in sheet racesheet's SMEP range 20000..29999"),
    (22, "the SSH port tinsnip reaches box1.invalid on"),
])
def test_a_listening_port_of_the_host_is_refused_before_any_host(inv, port, why):
    with pytest.raises(InputError, match=f"--port {port} of box1.invalid is {why}"):
        forwards.check_forward(inv, "gazette", "prod", port, "0", "hello", remove=False)


def test_a_port_of_another_host_s_range_or_a_standard_port_is_accepted(inv):
    assert forwards.check_forward(inv, "gazette", "prod", 80, "0", "hello", remove=False) == \
        (80, "hello")
    # other's sheet (racesheet) has a machine on box1, so 20600 is refused there but not 30000
    assert forwards.check_forward(inv, "gazette", "prod", 30000, "http", "", remove=False) == \
        (30000, "hello")
    assert forwards.check_forward(inv, "other", "prod", 22, "0", "hello", remove=False)
    with pytest.raises(InputError, match="SSH port tinsnip reaches box2.invalid:2222"):
        forwards.check_forward(inv, "other", "prod", 2222, "0", "hello", remove=False)


@pytest.mark.parametrize("to, service_name, message", [
    ("10110", "hello", "--to '10110' is neither a TIN_PORT index 0..9"),
    ("web", "hello", "--to 'web' is neither"),
    ("0", "nope", "does not run 'nope'"),
])
def test_the_target_is_one_of_this_environments_ten(inv, to, service_name, message):
    with pytest.raises(InputError, match=message):
        forwards.check_forward(inv, "gazette", "prod", 80, to, service_name, remove=False)


def test_the_forward_goes_to_the_environments_own_port(inv):
    smep = inv.smep("gazette", "test")
    f = forwards.forward_to(inv, smep, "hello", 80, "http", remove=False)
    assert (f.port, f.to, f.owner) == (80, 10110, "gazette-test:hello")


@pytest.mark.parametrize("forward, message", [
    ({10110: {"to": "http", "env": "prod"}}, "port 10110 of box1.invalid is gazette-test's port"),
    ({22: {"to": "http", "env": "prod"}}, "the SSH port tinsnip reaches"),
    ({80: ["http"]}, r"\['http'\] is not one of this service's ports"),
    ({80: {"to": "http", "env": ["prod"]}}, r"\['prod'\] is not one of the machine's"),
])
def test_the_inventory_s_forwards_are_checked_at_load(tmp_path, forward, message):
    data = yaml.safe_load(yaml.safe_dump(INV))
    data["machines"]["gazette"]["services"] = {"hello": {"ports": {"http": 0}, "forward": forward}}
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(InventoryError, match=message):
        load_inventory(tmp_path / "inventory.yaml")


@pytest.mark.parametrize("args, message", [
    (("--port", "10100", "--to", "0", "--service", "hello"), "is gazette-prod's port TIN_PORT_0"),
    (("--port", "22", "--to", "http"), "the SSH port tinsnip reaches box1.invalid on"),
    (("--port", "80", "--to", "0", "--service", "nope"), "does not run 'nope'"),
])
def test_the_cli_refuses_before_contacting_any_host(tmp_path, args, message):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(UNREACHABLE)
    p = run("service.forward", "--machine", "gazette", "--env", "prod", *args, inventory=inv)
    assert p.returncode == 2 and message in p.stderr, p.stdout + p.stderr
    assert "cannot connect" not in p.stderr
