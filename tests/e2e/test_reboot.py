"""`lab.reboot`: a host stops and starts again on the disk it had, with no tinsnip run between.

homelab3 boots systemd: the fstab mount, the lingering user's daemon and the container (by its
restart policy) come back by themselves. homelab1's PID 1 is sshd: its files stay, but nothing
starts the mount or the daemon; machine.status names what is down and machine.setup restarts
exactly that.
"""
import pytest

from .conftest import http

GW = ("--machine", "gateway", "--env", "prod")
GT = ("--machine", "gazette", "--env", "test")


def docker(lab, host, user, uid, args):
    return lab.run(host, f"sudo -u {user} env DOCKER_HOST=unix:///run/user/{uid}/docker.sock "
                         f"docker {args}", warn=True)


def deployed(cli, args):
    cli.inv("nas.station", "--sheet", "dynamicalsystem")
    for task in ("nas.setup", "machine.setup"):
        cli.inv(task, *args)
    cli.inv("service.deploy", *args, "--service", "hello")


def steps(p, host):
    """{step: state} from a task's report lines for ``host``."""
    out = {}
    for line in p.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == host:
            out[fields[1]] = fields[2]
    return out


def reboot(lab, cli, host):
    lab.close()  # the host's sshd goes away; reconnect afterwards
    p = cli.inv("lab.reboot", host)
    assert f"lab: {host} rebooted" in p.stdout, p.stdout
    print(p.stdout.strip())
    return p


@pytest.fixture(scope="module")
def homelab3_rebooted(lab, e2e_cli):
    deployed(e2e_cli, GW)
    before = docker(lab, "homelab3", "gateway-prod", 10300,
                    "inspect -f '{{.Id}} {{.State.StartedAt}}' hello-hello-1").stdout.split()
    boot_id = lab.run("homelab3", "cat /proc/sys/kernel/random/boot_id").stdout
    reboot(lab, e2e_cli, "homelab3")
    assert lab.run("homelab3", "cat /proc/sys/kernel/random/boot_id").stdout != boot_id
    return before


def test_homelab3_mount_comes_back_from_fstab_after_the_network(lab, homelab3_rebooted):
    mounts = lab.run("homelab3", "awk '$2 == \"/var/lib/tinsnip/gateway-prod/nfs\" {print $1, $3}' "
                                 "/proc/mounts").stdout
    assert mounts.split() == [f"{lab.ip('ds412plus')}:/volume1/dynamicalsystem/gateway/prod", "fuse.nfs"]
    unit = "var-lib-tinsnip-gateway\\\\x2dprod-nfs.mount"
    show = lab.run("homelab3", f"systemctl show {unit} -p SourcePath -p After -p ActiveState").stdout
    assert "SourcePath=/etc/fstab" in show and "ActiveState=active" in show
    assert "network-online.target" in show and "remote-fs-pre.target" in show


def test_homelab3_daemon_comes_back_through_linger(lab, homelab3_rebooted):
    assert lab.run("homelab3", "systemctl --user -M gateway-prod@ is-active docker.service"
                   ).stdout.strip() == "active"
    assert docker(lab, "homelab3", "gateway-prod", 10300, "info --format '{{.ServerVersion}}'").ok


def test_homelab3_container_restarts_by_policy_and_answers(lab, homelab3_rebooted):
    assert "hello from gateway-prod (uid 10300)" in http(lab, "homelab3", 10300, wait=30)
    cid, started = docker(lab, "homelab3", "gateway-prod", 10300,
                          "inspect -f '{{.Id}} {{.State.StartedAt}}' hello-hello-1").stdout.split()
    assert cid == homelab3_rebooted[0] and started != homelab3_rebooted[1]


def test_homelab3_needs_no_tinsnip_run_after_the_reboot(lab, e2e_cli, homelab3_rebooted):
    http(lab, "homelab3", 10300, wait=30)
    assert e2e_cli.inv("machine.status", *GW).returncode == 0
    for args in (("machine.setup", *GW), ("service.deploy", *GW, "--service", "hello")):
        p = e2e_cli.inv(*args)
        assert p.summaries["homelab3"]["changed"] == 0, p.stdout


@pytest.fixture(scope="module")
def homelab1_rebooted(lab, e2e_cli):
    deployed(e2e_cli, GT)
    assert "hello from gazette-test" in http(lab, "homelab1", 10110)
    reboot(lab, e2e_cli, "homelab1")


def test_homelab1_keeps_its_files(lab, homelab1_rebooted):
    assert lab.run("homelab1", "id -u gazette-test").stdout.strip() == "10110"
    assert "/var/lib/tinsnip/gazette-test/nfs nfs" in lab.read("homelab1", "/etc/fstab")
    link = lab.run("homelab1", "readlink /home/gazette-test/.local/share/dynamicalsystem/@gazette")
    assert link.stdout.strip() == "/mnt/gazette-test/data"
    assert lab.run("homelab1", "test -d /home/gazette-test/.local/share/docker", warn=True).ok


def test_homelab1_loses_mount_daemon_and_container(lab, homelab1_rebooted):
    assert lab.run("homelab1", "grep -c ' /var/lib/tinsnip/gazette-test/nfs ' /proc/mounts",
                   warn=True).stdout.strip() == "0"
    assert not lab.run("homelab1", "pgrep -u 10110 -x dockerd", warn=True).ok
    assert not lab.run("homelab1", "test -e /run/user/10110", warn=True).ok
    with pytest.raises(OSError):
        http(lab, "homelab1", 10110, wait=0)


def test_homelab1_status_names_what_is_down(e2e_cli, homelab1_rebooted):
    p = e2e_cli.inv("machine.status", *GT, check=False)
    assert p.returncode == 1
    failed = {step for step, state in steps(p, "homelab1").items() if state == "failed"}
    assert {"status.mount", "status.daemon"} <= failed, p.stdout
    assert "nothing is mounted on /mnt/gazette-test: run `inv machine.mount --machine gazette " \
           "--env test`" in p.stdout


def test_homelab1_setup_restarts_only_what_stopped(lab, e2e_cli, homelab1_rebooted):
    p = e2e_cli.inv("machine.setup", *GT)
    changed = {step for step, state in steps(p, "homelab1").items() if state == "changed"}
    assert changed == {"machine.mount", "machine.docker"}, p.stdout
    # the daemon starts the container again by its restart policy
    assert "hello from gazette-test (uid 10110)" in http(lab, "homelab1", 10110, wait=30)
    again = e2e_cli.inv("service.deploy", *GT, "--service", "hello")
    assert again.summaries["homelab1"]["changed"] == 0, again.stdout
    assert e2e_cli.inv("machine.status", *GT).returncode == 0
