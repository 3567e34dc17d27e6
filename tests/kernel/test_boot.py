"""The kernel hosts themselves: their own kernel and systemd, the kernel NFS server on ds920, and
how lab.status shows them."""
import subprocess
import sys

import tinsnip_lab as lab_api
from tinsnip_lab import qemu
from tinsnip_lab.testing import FIGURES

from .conftest import HOST, NAS, ROOT


def test_each_runs_its_own_kernel_with_systemd_as_pid_1(kernel_lab):
    with open("/proc/sys/kernel/random/boot_id") as f:
        boots = {f.read().strip()}
    pids = lab_api.status()["hosts"]
    for host in (NAS, HOST):
        assert kernel_lab.run(host, "cat /proc/1/comm").stdout.strip() == "systemd"
        assert kernel_lab.run(host, "systemctl is-system-running").stdout.strip() == "running"
        boots.add(kernel_lab.run(host, "cat /proc/sys/kernel/random/boot_id").stdout.strip())
        release = kernel_lab.run(host, "uname -r").stdout.strip()
        FIGURES.append(f"{host}: kernel {release}, guest memory in use "
                       f"{qemu.guest_memory_mib(host)} MiB, QEMU resident "
                       f"{qemu.rss_mib(pids[host]['pid'])} MiB")
    assert len(boots) == 3  # this machine's, ds920's and homelab4's


def test_ds920_serves_with_the_kernel_nfs_server(kernel_lab):
    assert kernel_lab.run(NAS, "systemctl is-active nfs-server").stdout.strip() == "active"
    versions = kernel_lab.run(NAS, "cat /proc/fs/nfsd/versions").stdout.split()
    assert "+3" in versions and "+4.2" in versions
    assert int(kernel_lab.run(NAS, "cat /proc/fs/nfsd/threads").stdout) > 0
    assert kernel_lab.run(NAS, "stat -c '%U %a' /volume1").stdout.split() == ["root", "755"]


def test_homelab4_has_no_nfs_server_and_the_rootless_tools(kernel_lab):
    assert kernel_lab.run(HOST, "systemctl is-active nfs-server", warn=True).stdout.strip() != \
        "active"
    assert kernel_lab.run(HOST, "docker compose version").stdout.startswith("Docker Compose")
    for unit in ("docker.service", "docker.socket", "containerd.service"):
        assert kernel_lab.run(HOST, f"systemctl is-enabled {unit}", warn=True).stdout.strip() \
            == "masked"
    for tool in ("newuidmap", "rootlesskit", "slirp4netns", "fuse-overlayfs", "iptables"):
        assert kernel_lab.run(HOST, f"command -v {tool}", warn=True).ok, tool


def test_lab_status_shows_them_with_their_own_kernel(kernel_lab):
    p = subprocess.run([sys.executable, "-m", "invoke", "lab.status"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    for host in (NAS, HOST):
        line = next(line for line in p.stdout.splitlines() if line.split()[:1] == [host])
        assert "ssh ok" in line and "own kernel" in line, line
    for host in (NAS, HOST):
        assert f"Host {host}\n" in (kernel_lab_dir() / "ssh_config").read_text()
        assert (kernel_lab_dir() / "known_hosts").read_text().count(f"{host},") == 1


def kernel_lab_dir():
    return lab_api.lab_dir()
