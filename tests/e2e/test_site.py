"""site.up and site.status over real SSH: the whole inventory in one call, every machine host at
once; a second call changes nothing at one command per machine host; a host that fails or
cannot be reached fails alone; --limit and --dry."""
import urllib.request
from pathlib import Path

import pytest

from .conftest import Cli

DATA = Path(__file__).resolve().parent / "data"
SITE = DATA / "site.yaml"
ENVS = {"homelab1": ["web-prod", "web-test"], "homelab2": ["mail-prod", "mail-test", "cache-prod"]}


def scopes(recap, host):
    return sorted({s["label"].split()[0] for s in recap["hosts"][host]["steps"] if s["label"]})


@pytest.fixture(scope="module")
def site():
    return Cli(SITE)


@pytest.fixture(scope="module")
def first(lab, site):
    return site.inv("site.up")


def test_one_call_converges_the_whole_inventory(lab, first):
    hosts = first.recap["hosts"]
    assert set(hosts) == {"ds412plus", "homelab1", "homelab2"}, first.stdout
    assert all(h["failed"] == 0 and h["changed"] > 0 for h in hosts.values()), first.stdout
    for host, envs in ENVS.items():
        assert scopes(first.recap, host) == sorted(envs)
    registry = lab.read("ds412plus", "/volume1/sitesheet/station/prod/machine-registry")
    number = {k: int(v) for k, v in (l.split("=") for l in registry.split())}
    for host, machine, env, index in (("homelab1", "web", 0, 0), ("homelab1", "web", 1, 0),
                                      ("homelab2", "mail", 0, 1), ("homelab2", "mail", 1, 1)):
        port = 50000 + number[machine] * 100 + env * 10 + index
        body = urllib.request.urlopen(f"http://{lab.ip(host)}:{port}/", timeout=10).read().decode()
        assert "hello from" in body
    exports = lab.read("ds412plus", "/etc/exports")
    assert f"/volume1/sitesheet/station/prod {lab.ip('homelab1')}(ro" in exports
    assert f"/volume1/sitesheet/cache/prod {lab.ip('homelab2')}(rw" in exports


def test_second_call_changes_nothing_at_one_command_per_machine_host(site, first):
    p = site.inv("site.up")
    hosts = p.recap["hosts"]
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in hosts.values()), p.stdout
    assert hosts["homelab1"]["commands"] == 1 and hosts["homelab2"]["commands"] == 1, p.stdout
    # the NAS: every registry in one command, every station, tree and export in one more
    assert hosts["ds412plus"]["commands"] == 2, p.stdout


def test_status_checks_every_machine_environment(site, first):
    p = site.inv("site.status")
    for host, envs in ENVS.items():
        steps = p.recap["hosts"][host]["steps"]
        assert all(s["status"] == "ok" for s in steps), p.stdout
        assert sorted({s["label"] for s in steps if s["label"]}) == sorted(envs)
        assert p.recap["hosts"][host]["commands"] == 1


@pytest.mark.parametrize("limit, wanted", [
    ("web:prod", {"homelab1": ["web-prod"]}),
    ("homelab2,!mail:test", {"homelab2": ["cache-prod", "mail-prod"]}),
    ("mail:*", {"homelab2": ["mail-prod", "mail-test"]}),
    ("hello,&web:*", {"homelab1": ["web-prod", "web-test"]}),
])
def test_limit_selects_hosts_machines_environments_services(site, first, limit, wanted):
    p = site.inv("site.up", "--limit", limit)
    machine_hosts = {h for h in p.recap["hosts"] if h != "ds412plus"}
    assert machine_hosts == set(wanted), p.stdout
    for host, envs in wanted.items():
        assert scopes(p.recap, host) == envs


def test_limit_service_deploys_only_that_service(site, first):
    p = site.inv("site.up", "--limit", "hello")
    cache = [s for s in p.recap["hosts"]["homelab2"]["steps"] if s["label"] == "cache-prod"]
    assert cache == []  # cache runs no hello
    steps = {s["step"] for s in p.recap["hosts"]["homelab1"]["steps"]}
    assert {"machine.user", "service.files", "service.up"} <= steps


def test_bad_limit_is_refused_before_any_host(site, first):
    p = site.inv("site.up", "--limit", "nosuch", check=False)
    assert p.returncode == 2 and "matches no host" in p.stderr and p.recap["hosts"] == {}


def test_dry_run_plans_the_site_and_changes_nothing(lab, site, first):
    env = "/mnt/mail-test/.machine/machine.env"
    lab.run("homelab2", f"chmod 600 {env}")
    try:
        p = site.inv("site.up", "--dry")
        changed = [(h, s["step"], s["label"]) for h, r in p.recap["hosts"].items()
                   for s in r["steps"] if s["status"] == "would change"]
        assert changed == [("homelab2", "machine.env", "mail-test")], p.stdout
        # a fresh copy written by the machine user, never a chmod through the name
        assert f"to {env} through a new temporary file" in p.stdout, p.stdout
        assert lab.run("homelab2", f"stat -c %a {env}").stdout.strip() == "600"
    finally:
        site.inv("site.up", "--limit", "mail:test")
    assert lab.run("homelab2", f"stat -c %a {env}").stdout.strip() == "640"


def test_a_failing_host_fails_alone(lab, site, first):
    env = "/mnt/web-test/.machine/machine.env"
    lab.run("homelab1", f"mv {env} /tmp/web-test.env && mkdir {env}")
    lab.run("homelab2", "chmod 600 /mnt/cache-prod/.machine/machine.env")
    try:
        p = site.inv("site.up", check=False)
        hosts = p.recap["hosts"]
        assert p.returncode == 1
        assert hosts["homelab1"]["failed"] == 1 and "not a file" in hosts["homelab1"]["error"]
        assert hosts["homelab2"]["failed"] == 0 and hosts["homelab2"]["changed"] == 1
        assert "homelab1: step" not in p.stdout and "homelab1" in p.stderr
    finally:
        lab.run("homelab1", f"rmdir {env} && mv /tmp/web-test.env {env}")


def test_an_unreachable_host_fails_alone(lab, site, first, tmp_path):
    gone = tmp_path / "site.yaml"
    gone.write_text(SITE.read_text() + (
        "  ghost:\n    sheet: sitesheet\n    host: homelab2:2999\n    environments: [prod]\n"))
    p = Cli(gone).inv("site.up", check=False)
    hosts = p.recap["hosts"]
    assert p.returncode == 3, p.stdout + p.stderr
    assert hosts["homelab2:2999"]["reachable"] is False
    assert [s["status"] for s in hosts["homelab2:2999"]["steps"]] == ["skipped"] * 6
    assert "homelab2:2999: ok=0 changed=0 failed=0 commands=0" in p.stdout
    assert all(hosts[h]["failed"] == 0 for h in ("ds412plus", "homelab1", "homelab2"))
    assert hosts["homelab1"]["commands"] == 1 and hosts["homelab2"]["changed"] == 0
