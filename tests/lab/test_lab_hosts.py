"""The lab's hosts: reachable over SSH with checked host keys, isolated from this machine."""

import hashlib
import pwd
import subprocess
from pathlib import Path

import fabric
import paramiko
import pytest

import tinsnip_lab as lab_api

pytestmark = pytest.mark.lab

HOSTS = sorted(lab_api.LAB_HOSTS)
OUTER_ETC = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/etc/hostname")


def _digest(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for p in paths if Path(p).exists()}


@pytest.mark.parametrize("host", HOSTS)
def test_each_host_answers_with_its_own_name_and_address(lab, host):
    assert lab.run(host, "hostname").stdout.strip() == host
    addrs = lab.run(host, "ip -o -4 addr show dev eth0").stdout
    assert f"inet {lab.ip(host)}/24" in addrs
    assert lab.run(host, "id -un").stdout.strip() == "root"


@pytest.mark.parametrize("host", HOSTS)
def test_sshd_or_systemd_is_pid_1_of_its_own_pid_namespace(lab, host):
    init = "systemd" if host in lab_api.SYSTEMD_HOSTS else "sshd"
    assert lab.run(host, "cat /proc/1/comm").stdout.strip() == init


def test_systemd_host_boots_in_a_cgroup_of_its_own(lab):
    from tinsnip_lab import nspawn
    assert lab.run("homelab3", "systemctl is-system-running --wait").stdout.strip() == "running"
    pid = lab_api.status()["hosts"]["homelab3"]["pid"]
    cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    assert f":name=systemd:/{nspawn.cgroup_path('homelab3')}" in cgroups
    for name in nspawn.CGROUP_HIERARCHIES:
        assert not (nspawn.CGROUP_ROOT / name / "payload").exists()
        assert not (nspawn.CGROUP_ROOT / name / "supervisor").exists()
    # networkd inside gives eth0 its address; the NFS client's device is there
    assert "configured" in lab.run("homelab3", "networkctl status eth0").stdout


def test_system_ssh_client_logs_in_with_the_lab_config(lab):
    proc = subprocess.run(
        ["ssh", "-F", str(lab_api.ssh_config_path()), "-o", "BatchMode=yes", "homelab1",
         "hostname"], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "homelab1"


def test_unknown_host_key_is_refused(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = fabric.Config(runtime_ssh_path=str(lab_api.ssh_config_path()))
    conn = fabric.Connection("homelab2", config=config)
    conn.client.load_host_keys(str(empty))
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        conn.open()
    conn.close()


def test_hosts_reach_each_other_by_name(lab):
    for host in HOSTS:
        resolved = lab.run("homelab1", f"getent hosts {host}").stdout.split()[0]
        assert resolved == lab.ip(host)
    lab.run("homelab1", "ping -c 1 -W 2 ds412plus")
    lab.run("homelab2", "ping -c 1 -W 2 homelab1")


def test_user_made_on_homelab1_exists_only_there(lab):
    before = _digest(OUTER_ETC)
    user = "tslabprobe"
    lab.run("homelab1", f"useradd -m {user}")
    try:
        assert lab.run("homelab1", f"id -u {user}", warn=True).ok
        assert user in lab.read("homelab1", "/etc/passwd")
        assert not lab.run("homelab2", f"id -u {user}", warn=True).ok
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
        assert user not in Path("/etc/passwd").read_text()
        assert _digest(OUTER_ETC) == before
    finally:
        lab.run("homelab1", f"userdel -r {user}", warn=True)


def test_a_file_written_on_one_host_stays_on_that_host(lab):
    marker = "/etc/tslab-marker"
    lab.run("homelab1", f"echo homelab1 > {marker}")
    try:
        assert lab.read("homelab1", marker) == "homelab1\n"
        assert not lab.run("homelab2", f"test -e {marker}", warn=True).ok
        assert not (Path("/var/lib/tinsnip-lab/rootfs") / marker.lstrip("/")).exists()
        assert not Path(marker).exists()
    finally:
        lab.run("homelab1", f"rm -f {marker}")


@pytest.mark.parametrize("host", ["homelab1", "homelab3"])
def test_dev_has_what_rootless_docker_and_fuse_need(lab, host):
    out = lab.run(host, "stat -c '%n %a %F' /dev/null /dev/net/tun /dev/fuse").stdout
    for line in out.splitlines():
        name, mode, kind = line.split(" ", 2)
        assert mode == "666" and kind == "character special file", line


def test_up_again_does_nothing_and_keeps_the_hosts(lab):
    before = lab_api.status()
    boot = {h: lab.run(h, "cut -d' ' -f22 /proc/1/stat").stdout.strip() for h in HOSTS}
    assert lab_api.up(log=lambda msg: None) is False
    after = lab_api.status()
    assert after["up"]
    assert {h: v["pid"] for h, v in after["hosts"].items()} == \
        {h: v["pid"] for h, v in before["hosts"].items()}
    assert {h: lab.run(h, "cut -d' ' -f22 /proc/1/stat").stdout.strip() for h in HOSTS} == boot
