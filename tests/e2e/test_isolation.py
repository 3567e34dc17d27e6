"""Two machine-environments on one host cannot reach each other's data, and nothing foreign runs.

gazette prod and test on homelab1 (PID 1 sshd), gateway prod and test on homelab3 (systemd), each
with its hello container running, and a third local account: every cross access is refused on
the host (the NAS squashes every client user to the export's UID and cannot decide it), own
access keeps working, machine.status is green. A line planted in a sourced file runs nothing;
root reads nothing in a machine user's home through a link; a host set up before the gate is
converted by machine.setup with its data; teardown after a killed daemon leaves no process and
no mount namespace holding the export; two setups of one environment at once converge.

The matrix itself is tests/isolation_checks.py, for the lab's FUSE client here and for the
kernel client on the QEMU hosts.
"""
import concurrent.futures
import hashlib

import pytest

import isolation_checks as ic
from tinsnip_tasks.plans import status as checks

from .conftest import http, steps

IMAGE = "busybox:1.36"  # the catalog hello's, in each daemon once hello is deployed
NAS = "ds412plus"
GP = ("--machine", "gazette", "--env", "prod")
GT = ("--machine", "gazette", "--env", "test")
PROD, TEST = ic.Env("gazette-prod", 10100), ic.Env("gazette-test", 10110)
NAS_DIR = {PROD: "/volume1/dynamicalsystem/gazette/prod", TEST: "/volume1/dynamicalsystem/gazette/test"}
OLD_FSTAB = ("# tinsnip: /mnt/gazette-test\n{nas}:/volume1/dynamicalsystem/gazette/test "
             "/mnt/gazette-test nfs rw,hard,vers=3,_netdev 0 0\n")


def run_as_root(lab):
    return lambda host, command: lab.run(host, command, warn=True)


def deploy(cli, args):
    cli.inv("nas.station", "--sheet", "dynamicalsystem")
    for task in ("nas.setup", "machine.setup"):
        cli.inv(task, *args)
    cli.inv("service.deploy", *args, "--service", "hello")


def started_at(lab, env, host="homelab1"):
    return lab.run(host, ic.docker(env, "inspect -f '{{.State.StartedAt}}' hello-hello-1"),
                   warn=True).stdout.strip()


@pytest.fixture(scope="module")
def both(lab, e2e_cli):
    for args in (GP, GT):
        deploy(e2e_cli, args)
    lab.run("homelab1", "id plain >/dev/null 2>&1 || useradd -u 5000 -m plain")
    return e2e_cli


def test_every_cross_access_is_refused_and_own_access_works(lab, both):
    rows = ic.assert_isolated(run_as_root(lab), "homelab1", [PROD, TEST], ["plain", "nobody", 4242],
                              IMAGE)
    print(f"{len(rows)} cells, e.g.", *rows[:3], sep="\n  ")
    # the containers' writes land on the NAS as each environment's UID; the intruders' never
    for env in (PROD, TEST):
        d = NAS_DIR[env] + "/data"
        out = lab.run(NAS, f"stat -c %u {d}/isolation-ctr.txt {d}/isolation-own.txt; "
                           f"test ! -e {d}/isolation-intruder.txt && echo none").stdout.split()
        assert out == [str(env.uid), str(env.uid), "none"]


def test_a_local_account_s_own_nfs_client_is_refused_by_the_nas(lab, both):
    """The NAS serves only privileged source ports (exports' default `secure`): root's mount is
    served, a local account speaking NFS itself is not."""
    token = ic.plant_secret(run_as_root(lab), "homelab1", PROD)
    rows = ic.nfs_client_cross_access(run_as_root(lab), "homelab1", NAS, NAS_DIR[PROD],
                                      ["plain", "gazette-test", 4242], token)
    assert rows and not ic.not_refused(rows), "\n".join(map(str, rows))
    assert lab.run("homelab1", f"nfs-cat nfs://{NAS}{NAS_DIR[PROD]}/data/isolation-secret.txt"
                   ).stdout.strip() == token  # root, from a privileged port


def test_the_running_services_answer_and_write_as_their_uid(lab, both):
    for env, port in ((PROD, 10100), (TEST, 10110)):
        assert f"hello from {env.user} (uid {env.uid})" in http(lab, "homelab1", port)
        assert lab.run(NAS, f"stat -c %u {NAS_DIR[env]}/data/hello/www/index.html").stdout.strip() \
            == str(env.uid)


def test_the_export_is_mounted_behind_the_gate_nosuid_nodev(lab, both):
    fstab = lab.read("homelab1", "/etc/fstab").splitlines()
    for env in (PROD, TEST):
        where = f"/var/lib/tinsnip/{env.user}/nfs"
        assert (f"{lab.ip(NAS)}:{NAS_DIR[env]} {where} nfs rw,hard,vers=3,nosuid,nodev,_netdev 0 0"
                in fstab)
        assert not any(f" {env.mount_point} " in line for line in fstab)
        mounts = lab.run("homelab1", f"awk '$2 == \"{where}\" {{print $1, $4}}' /proc/mounts").stdout
        source, options = mounts.split()
        assert source == f"{lab.ip(NAS)}:{NAS_DIR[env]}" and {"nosuid", "nodev"} <= set(options.split(","))
        assert lab.run("homelab1", f"readlink {env.mount_point}").stdout.strip() == where
        assert lab.run("homelab1", f"stat -c '%u %g %a' /var/lib/tinsnip/{env.user}").stdout.split() \
            == ["0", str(env.uid), "710"]


def test_status_is_green_and_checks_the_gate(lab, both):
    for args in (GP, GT):
        p = both.inv("machine.status", *args)
        items = {k[7:]: v for k, v in steps(p, "homelab1").items() if k.startswith("status.")}
        assert all(state == "ok" for state, _ in items.values()), p.stdout
        assert "UID 65534 refused" in items["gate"][1]
        assert {i for i, _ in checks.ITEMS if i not in checks.SYSTEMD_ONLY} <= set(items)


def test_a_second_setup_changes_nothing(both):
    for args in (GP, GT):
        p = both.inv("machine.setup", *args)
        assert p.summaries["homelab1"]["changed"] == 0 and p.summaries["homelab1"]["commands"] == 1, \
            p.stdout


@pytest.mark.parametrize("path, fix", [
    ("/mnt/gazette-prod/service/hello/.env", "run service.deploy"),
    ("/mnt/gazette-prod/.machine/machine.env", "run machine.setup"),
], ids=["dotenv", "machine.env"])
def test_a_planted_line_runs_nothing(lab, both, path, fix):
    canary = "/tmp/isolation-canary"
    lab.run("homelab1", f"rm -f {canary}")
    # root on the host stands in for any foreign writer (on the mount it acts as the export's UID)
    lab.run("homelab1", f"echo 'X=$(touch {canary}; id > {canary})' >> {path}")
    p = both.inv("machine.status", *GP, check=False)
    assert p.returncode == 1
    state, detail = steps(p, "homelab1")["status.interpolation"]
    assert state == "failed" and f"{path}: not the file tinsnip wrote" in detail and fix in detail
    assert not lab.run("homelab1", f"test -e {canary}", warn=True).ok
    # the task the message names writes the file again, and everything is green
    if fix == "run service.deploy":
        both.inv("service.deploy", *GP, "--service", "hello")
    else:
        both.inv("machine.setup", *GP)
    assert both.inv("machine.status", *GP).returncode == 0
    assert not lab.run("homelab1", f"test -e {canary}", warn=True).ok


def test_root_reads_no_file_of_the_user_through_a_link(lab, both):
    shadow = hashlib.sha256(lab.run("homelab1", "cat /etc/shadow").stdout.encode()).hexdigest()
    unit = "/home/gazette-prod/.config/systemd/user/docker.service"
    lab.run("homelab1", ic.as_account("gazette-prod", f"mkdir -p $(dirname {unit}) && "
                                                      f"ln -sfn /etc/shadow {unit}"))
    try:
        p = both.inv("machine.setup", *GP, "-v")
        assert shadow not in p.stdout + p.stderr
        assert "unit=\n" in p.stdout + p.stderr  # the fact was read, as the user: nothing to hash
    finally:
        lab.run("homelab1", f"rm -f {unit}")


def test_an_old_host_is_converted_with_its_data(lab, both):
    """gazette-test as tinsnip set it up before the gate: the export mounted on /mnt/gazette-test
    from its old fstab line, the daemon started after it, no gate, no digests."""
    h = "homelab1"
    lab.run(h, "pkill -u 10110 -x dockerd; i=0; while pgrep -u 10110 -x dockerd >/dev/null && [ $i -lt 100 ]; do i=$((i+1)); "
               "sleep 0.1; done")
    lab.run(h, "umount /var/lib/tinsnip/gazette-test/nfs && rm -rf /var/lib/tinsnip/gazette-test "
               "/mnt/gazette-test && mkdir /mnt/gazette-test && sed -i '/gazette-test/d' /etc/fstab && "
               f"printf %s '{OLD_FSTAB.format(nas=lab.ip(NAS))}' >> /etc/fstab && mount /mnt/gazette-test")
    both.inv("machine.docker", *GT)
    lab.run(h, ic.docker(TEST, "start hello-hello-1"))
    assert "hello from gazette-test" in http(lab, h, 10110)
    # the old layout's hole: another machine user reads it
    assert lab.run(h, "sudo -u gazette-prod cat /mnt/gazette-test/.machine/machine.env", warn=True).ok
    lab.run(h, ic.as_account("gazette-test", "echo kept > /mnt/gazette-test/data/before-the-gate"))
    before = started_at(lab, TEST)

    p = both.inv("machine.setup", *GT)
    changed = {s for s, (state, _) in steps(p, h).items() if state == "changed"}
    assert {"machine.mount", "machine.docker", "machine.env"} <= changed, p.stdout
    assert "link /mnt/gazette-test -> /var/lib/tinsnip/gazette-test/nfs" in steps(p, h)["machine.mount"][1]
    assert "hello from gazette-test (uid 10110)" in http(lab, h, 10110)
    after = started_at(lab, TEST)
    assert after and after != before  # restarted once, by its restart policy
    assert lab.run(h, ic.as_account("gazette-test", "cat /mnt/gazette-test/data/before-the-gate")
                   ).stdout.strip() == "kept"
    assert "/mnt/gazette-test " not in lab.read(h, "/etc/fstab")
    assert not lab.run(h, "sudo -u gazette-prod cat /mnt/gazette-test/.machine/machine.env",
                       warn=True).ok
    # a deploy records the digest of the .env the old setup wrote (no container change)
    d = both.inv("service.deploy", *GT, "--service", "hello")
    assert steps(d, h)["service.up"][0] == "ok", d.stdout
    assert both.inv("machine.status", *GT).returncode == 0
    again = both.inv("machine.setup", *GT)
    assert again.summaries[h]["changed"] == 0, again.stdout
    assert started_at(lab, TEST) == after


def test_teardown_after_a_killed_daemon_ends_everything(lab, both):
    h, lo = "homelab1", 10110 * 65536
    lab.run(h, "pkill -KILL -u 10110 -x dockerd; sleep 1")
    survivors = lab.run(h, f"ps -e -o uid= | awk '$1 >= {lo} && $1 < {lo + 65536}' | wc -l").stdout
    assert int(survivors) > 0  # the container outlived its daemon
    # a process of another user that keeps the export in a mount namespace of its own, bound
    # elsewhere (a copy at the mount point itself goes when the mount point is removed)
    hold = ("mkdir -p /tmp/isolation-hold && mount --bind /var/lib/tinsnip/gazette-test/nfs/data "
            "/tmp/isolation-hold && exec sleep 601")
    holder = lab.run(h, "start-stop-daemon --start --background --exec /usr/bin/unshare -- -m "
                        f"--propagation private sh -c '{hold}' && sleep 0.5 && "
                        "pgrep -x -f 'sleep 601'").stdout.strip()
    assert lab.run(h, f"grep -c isolation-hold /proc/{holder}/mountinfo", warn=True).ok
    try:
        p = both.inv("machine.teardown", *GT, check=False)
        assert p.returncode == 1
        state, detail = steps(p, h)["machine.unshared"]
        assert state == "failed" and f"{lab.ip(NAS)}:/volume1/dynamicalsystem/gazette/test is still " \
            "mounted in the mount namespace of PID" in detail
        assert f"PID {holder} (sleep, UID 0)" in detail, detail
    finally:
        lab.run(h, f"kill {holder}", warn=True)
    p = both.inv("machine.teardown", *GT)
    st = steps(p, h)
    assert "no process of UID 10110 or of its subordinate UIDs" in st["machine.docker"][1]
    assert st["machine.unshared"][0] == "ok"
    assert lab.run(h, f"ps -e -o uid= | awk '$1 == 10110 || ($1 >= {lo} && $1 < {lo + 65536})' "
                      "| wc -l").stdout.strip() == "0"
    assert lab.run(h, f"grep -ls ' {lab.ip(NAS)}:/volume1/dynamicalsystem/gazette/test ' "
                      "/proc/[0-9]*/mountinfo | wc -l").stdout.strip() == "0"
    assert not lab.run(h, "test -e /mnt/gazette-test || test -e /var/lib/tinsnip/gazette-test",
                       warn=True).ok


def test_two_setups_of_one_environment_at_once_converge(lab, both):
    assert not lab.run("homelab1", "id gazette-test", warn=True).ok  # torn down just before
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: both.inv("machine.setup", *GT, check=False), range(2)))
    for p in runs:
        assert p.returncode == 0 and p.summaries["homelab1"]["failed"] == 0, p.stdout + p.stderr
    both.inv("service.deploy", *GT, "--service", "hello")
    assert both.inv("machine.status", *GT).returncode == 0
    assert both.inv("machine.setup", *GT).summaries["homelab1"]["changed"] == 0


# -- homelab3: systemd ----------------------------------------------------------------------

SD = (ic.Env("gateway-prod", 10300), ic.Env("gateway-test", 10310))


@pytest.fixture(scope="module")
def systemd_both(lab, e2e_cli):
    for env in ("prod", "test"):
        deploy(e2e_cli, ("--machine", "gateway", "--env", env))
    return e2e_cli


def test_systemd_host_gate_and_status(lab, systemd_both):
    ic.assert_isolated(run_as_root(lab), "homelab3", list(SD), ["nobody"], IMAGE)
    for env in ("prod", "test"):
        p = systemd_both.inv("machine.status", "--machine", "gateway", "--env", env)
        items = {k: v for k, v in steps(p, "homelab3").items() if k.startswith("status.")}
        assert items["status.gate"][0] == "ok" and items["status.unit"][0] == "ok", p.stdout
    unit = "var-lib-tinsnip-gateway\\\\x2dprod-nfs.mount"
    show = lab.run("homelab3", f"systemctl show {unit} -p SourcePath -p ActiveState").stdout
    assert "SourcePath=/etc/fstab" in show and "ActiveState=active" in show
