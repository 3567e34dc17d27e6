"""gazette prod and test on homelab1, lldap prod on homelab2: apart in every way, and machine
numbers handed out from the station registry without collisions."""
import concurrent.futures
import urllib.request

import pytest

from tinsnip_tasks.core import registry as reg

SETS = (("gazette", "prod", "homelab1", 10100, 10100),
        ("gazette", "test", "homelab1", 10110, 10110),
        ("lldap", "prod", "homelab2", 10200, 10203))


def docker(lab, host, user, uid, args):
    return lab.run(host, f"sudo -u {user} env DOCKER_HOST=unix:///run/user/{uid}/docker.sock "
                         f"docker {args}", warn=True)


@pytest.fixture(scope="module")
def three(lab, e2e_cli):
    for machine, env, *_ in SETS:
        args = ("--machine", machine, "--env", env)
        e2e_cli.inv("nas.setup", *args)
        e2e_cli.inv("machine.setup", *args)
        e2e_cli.inv("service.deploy", *args, "--service", "hello")
    return e2e_cli


@pytest.mark.parametrize("machine, env, host, uid, port", SETS, ids=lambda v: str(v))
def test_each_answers_on_its_own_port_as_its_own_uid(lab, three, machine, env, host, uid, port):
    body = urllib.request.urlopen(f"http://{lab.ip(host)}:{port}/", timeout=10).read().decode()
    assert f"hello from {machine}-{env} (uid {uid})" in body
    nas_dir = f"/volume1/dynamicalsystem/{machine}/{env}"
    assert lab.run("ds412plus", f"stat -c %u {nas_dir}/data/hello/www/index.html").stdout.strip() == str(uid)


def test_users_mounts_and_daemons_stay_apart(lab, three):
    ids = lab.run("homelab1", "id -u gazette-prod; id -u gazette-test").stdout.split()
    assert ids == ["10100", "10110"]
    assert not lab.run("homelab2", "id gazette-prod", warn=True).ok
    mounts = lab.run("homelab1", "awk '$2 ~ /^\\/var\\/lib\\/tinsnip\\//{print $1, $2}' /proc/mounts").stdout
    nas = lab.ip('ds412plus')
    assert f"{nas}:/volume1/dynamicalsystem/gazette/prod /var/lib/tinsnip/gazette-prod/nfs" in mounts
    assert f"{nas}:/volume1/dynamicalsystem/gazette/test /var/lib/tinsnip/gazette-test/nfs" in mounts
    prod = docker(lab, "homelab1", "gazette-prod", 10100, "ps --format '{{.Names}} {{.Ports}}'").stdout
    test = docker(lab, "homelab1", "gazette-test", 10110, "ps --format '{{.Names}} {{.Ports}}'").stdout
    assert "10100->8080" in prod and "10110" not in prod
    assert "10110->8080" in test and "10100" not in test
    pids = lab.run("homelab1", "pgrep -u gazette-prod -x dockerd; echo --; pgrep -u gazette-test -x dockerd").stdout
    a, b = pids.split("--")
    assert a.split() and b.split() and not set(a.split()) & set(b.split())


def test_one_cannot_reach_anothers_data(lab, three):
    # homelab2 is not in gazette prod's export: the NAS refuses the mount
    lab.run("homelab2", "mkdir -p /tmp/steal")
    refused = lab.run("homelab2", "mount -t nfs ds412plus:/volume1/dynamicalsystem/gazette/prod /tmp/steal",
                      warn=True)
    assert not refused.ok
    # from gazette test's export there is no way up into gazette prod's folder
    up = lab.run("homelab1", "sudo -u gazette-test ls /mnt/gazette-test/../gazette-prod/data/hello 2>&1; "
                             "sudo -u gazette-test cat /mnt/gazette-test/data/../../prod/data/hello/www/index.html",
                 warn=True)
    assert "hello from gazette-prod" not in up.stdout
    # a file gazette test's container writes lands under gazette/test, owned 10110, never under prod
    docker(lab, "homelab1", "gazette-test", 10110, "exec hello-hello-1 sh -c 'echo t > /data/mine'")
    owners = lab.run("ds412plus", "stat -c %u /volume1/dynamicalsystem/gazette/test/data/hello/mine; "
                                  "test ! -e /volume1/dynamicalsystem/gazette/prod/data/hello/mine && echo absent").stdout.split()
    assert owners == ["10110", "absent"]


def test_racing_setups_get_different_numbers(lab, e2e_cli):
    path = "/volume1/racesheet/station/prod/machine-registry"
    lab.run("ds412plus", f"rm -f {path} {path}.tinsnip-lock")
    names = ("ledger", "mailer", "relay")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda m: e2e_cli.inv("nas.setup", "--machine", m, "--env", "prod"), names))
    registry = reg.parse_registry(lab.read("ds412plus", path))
    assert sorted(registry[n] for n in names) == [4, 5, 6]
    assert registry["gazette"] == 1 and registry["lldap"] == 2
    for name, run in zip(names, runs):
        uid = 20000 + registry[name] * 100
        assert f"{name}={registry[name]:02d}" in run.stdout
        assert lab.run("ds412plus", f"stat -c %u /volume1/racesheet/{name}/prod").stdout.strip() == str(uid)
    # the number sticks: a second run reads it and assigns nothing
    again = e2e_cli.inv("nas.setup", "--machine", "relay", "--env", "prod")
    assert "changed=0" in again.stdout
