"""The registry on a host: the shell reads and writes under one lock, Python decides.

``Host`` gets a local Invoke ``Context``: the scripts run in a real ``sh`` here, the way they
run on the NAS."""
import subprocess
import threading

import pytest
from invoke import Config, Context, Local

from tinsnip_tasks.core import registry as reg
from tinsnip_tasks.errors import TinsnipError
from tinsnip_tasks.ops.base import Host
from tinsnip_tasks.plans import registry as plan
from tinsnip_tasks.plans.numbers import assign_number


class QuickLocal(Local):
    """Invoke's local runner feeds stdin a byte at a time with a 10 ms pause; no pause here."""

    input_sleep = 0


def local():
    return Context(Config(overrides={"runners": {"local": QuickLocal}}))


def sh(command):
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout


def assign(path, name, pin=None, reserved=(), *, dry=False, lines=None):
    """Assign through the run's own function; ``lines`` gets the registry step's report."""
    host = Host("nas", local(), dry=dry)
    try:
        return assign_number(host, str(path), name, pin, reserved).number
    finally:
        if lines is not None:
            lines += [f"{r.step} {r.status} {r.detail}" for r in host.result.steps]


def test_assignment_is_exclusive_under_concurrency(tmp_path):
    """Eight setups at once for eight new machines: eight different numbers, from 04 up."""
    path = tmp_path / "station" / "prod" / "machine-registry"
    results = {}

    def go(name):
        results[name] = assign(path, name)

    threads = [threading.Thread(target=go, args=(f"box{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == list(range(4, 12))
    final = reg.parse_registry(path.read_text())
    assert final["gazette"] == 1 and final["lldap"] == 2 and len(final) == 11
    assert {final[n] for n in results} == set(results.values())
    # a second assignment of a known machine changes nothing
    before = path.read_text()
    lines = []
    assert assign(path, "box3", lines=lines) == results["box3"]
    assert path.read_text() == before
    assert lines[-1].startswith("registry ok ")
    assert f"box3={results['box3']:02d} in {path}" in lines[-1]


def test_seeding_and_assigning_share_one_lock(tmp_path):
    path = str(tmp_path / "machine-registry")
    seeding = plan.station_registry(path)
    assigning = plan.entry(path, "web")[-1]
    # both lock the same file: what Edited locks is a function of the path alone
    lock = lambda r: r._lock_and_check(None).text.split("exec ")[1].split()[0]  # noqa: E731
    assert lock(seeding) == lock(assigning) == f"8>>{path}.tinsnip-lock"
    assert seeding.edit("") == "gazette=01\nlldap=02\ngateway=03\n"


@pytest.mark.parametrize("text, want", [
    ("gazette=01\nlldap=02\ngateway=03", 4),            # no final newline
    ("gazette=01\r\nlldap=02\r\ngateway=03\r\n", 4),    # CRLF
    ("gazette = 01\n lldap=2 \ngateway=03\n", 4),       # spaces, one digit
    ("gazette=01\ngazette=01\nnewbox=4\n", 5),          # a line repeated
], ids=["no-final-newline", "crlf", "spaces", "repeated"])
def test_any_readable_registry_is_normalised_before_the_append(tmp_path, text, want):
    path = tmp_path / "machine-registry"
    path.write_bytes(text.encode())
    assert assign(path, "photos") == want
    written = path.read_text()
    assert written == reg.format_registry(reg.parse_registry(written))  # normal form
    assert reg.parse_registry(written)["photos"] == want
    # and the shell never wrote a glued line such as gateway=03photos=04
    assert all(line.count("=") == 1 for line in written.splitlines())


def test_a_bad_registry_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "machine-registry"
    path.write_text("gazette=00\n")
    with pytest.raises(TinsnipError, match="00 belongs to the station"):
        assign(path, "photos")
    assert path.read_text() == "gazette=00\n"


def test_pins_go_into_the_registry_and_are_not_handed_out(tmp_path):
    path = tmp_path / "machine-registry"
    assert assign(path, "blog", reserved={4: "web"}) == 5
    assert assign(path, "web", pin=4) == 4
    assert reg.parse_registry(path.read_text())["web"] == 4
    with pytest.raises(TinsnipError, match="gives 05 to 'blog'"):
        assign(path, "shop", pin=5)


def test_a_default_machine_without_registry_writes_nothing(tmp_path):
    path = tmp_path / "station" / "machine-registry"
    assert assign(path, "gazette") == 1
    assert not path.exists()


def test_a_dry_run_decides_without_writing(tmp_path):
    path = tmp_path / "machine-registry"
    path.write_text("gazette=01\n")
    lines = []
    assert assign(path, "photos", dry=True, lines=lines) == 4
    assert path.read_text() == "gazette=01\n"
    assert lines[-1].startswith("registry would change") and "photos=04" in lines[-1]


def test_read_distinguishes_missing_from_empty(tmp_path):
    path = tmp_path / "machine-registry"
    assert plan.parse_output(sh(plan.read_command(str(path))), "r") is None
    path.write_text("")
    assert plan.parse_output(sh(plan.read_command(str(path))), "r") == {}
    path.write_text("web=04")
    assert plan.parse_output(sh(plan.read_command(str(path))), "r") == {"web": 4}


def test_a_default_number_is_never_said_to_be_in_a_file_that_lists_nothing():
    from tinsnip_tasks.plans import registry as registry_plan

    entry = registry_plan.entry("/volume1/s/station/prod/machine-registry", "gazette")[-1]
    assert entry.edit("") == ""  # the built-in default: nothing to write
    assert entry.describe() == ("gazette=01 (built-in default; /volume1/s/station/prod/"
                                "machine-registry lists no machine, nas.station seeds it)")
    entry.edit("gazette=07\n")
    assert entry.describe() == "gazette=07 in /volume1/s/station/prod/machine-registry"


def test_a_site_run_numbers_every_new_machine_in_one_read_and_one_write(tmp_path):
    """Three new machines in prod, two in test: both registries read in one command, every
    missing entry written in one more; a second run reads once and writes nothing."""
    from tinsnip_tasks.core.inventory import load_inventory
    from tinsnip_tasks.plans.numbers import Numbers

    (tmp_path / "inventory.yaml").write_text(
        f"sheets:\n  s:\n    nas: n\n    volume: {tmp_path}\n    number: 3\n"
        "nas:\n  n:\n    host: n\nmachines:\n"
        + "".join(f"  {m}:\n    sheet: s\n    host: h\n    environments: [{envs}]\n"
                  for m, envs in (("alpha", "prod, test"), ("beta", "prod"),
                                  ("gamma", "prod, test"))))
    inv = load_inventory(tmp_path / "inventory.yaml")
    mes = [inv.machine_env(m, e) for m, e in (("alpha", "prod"), ("alpha", "test"),
                                              ("beta", "prod"), ("gamma", "prod"),
                                              ("gamma", "test"))]
    for runs in (2, 1):
        host, book = Host("nas", local()), Numbers()
        book.assign(host, mes)
        assert host.commands == runs and not host.failed
        numbers = {(me.machine.name, me.env): book.smep(host, me, assign=True).machine_no
                   for me in mes}
        assert numbers == {("alpha", "prod"): 4, ("alpha", "test"): 4, ("beta", "prod"): 5,
                           ("gamma", "prod"): 6, ("gamma", "test"): 5}
        assert host.commands == runs  # the numbers come from what was read
    prod = reg.parse_registry((tmp_path / "s/station/prod/machine-registry").read_text())
    assert {m: prod[m] for m in ("alpha", "beta", "gamma")} == {"alpha": 4, "beta": 5, "gamma": 6}
