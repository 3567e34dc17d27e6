"""`lab.down` with kernel hosts: machines powered off before the NAS, and no QEMU, tap,
namespace or disk overlay left behind. Runs last in the tier (it ends the kernel hosts); the
fast hosts come back up for the tests after it."""
import os
import subprocess
import sys

import tinsnip_lab as lab_api
from tinsnip_lab import hosts, network, qemu, settings

from .conftest import ROOT


def test_down_powers_off_machine_then_nas_and_leaves_nothing(kernel_lab):
    pids = {h: lab_api.status()["hosts"][h]["pid"] for h in settings.KERNEL_HOSTS}
    disks = [hosts.host_dir(h) / "disk.qcow2" for h in settings.KERNEL_HOSTS]
    assert all(qemu.running(h, pid) for h, pid in pids.items()) and all(d.exists() for d in disks)
    kernel_lab.close()
    p = subprocess.run([sys.executable, "-m", "invoke", "lab.down"], cwd=ROOT, check=True,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    try:
        lines = p.stdout.splitlines()
        order = [i for i, line in enumerate(lines) if "powered off" in line]
        assert [lines[i].split()[1] for i in order] == ["homelab4", "ds920"], p.stdout
        assert not any(os.path.exists(f"/proc/{pid}") for pid in pids.values())
        assert not any(d.exists() for d in disks)
        assert network.lab_namespaces() == [] and network.lab_links() == []
        assert not settings.kernel_enabled()
        assert not lab_api.is_up()
    finally:
        lab_api.up(log=lambda msg: None)
        kernel_lab.close()
    assert "ds920" not in lab_api.LAB_HOSTS
    assert "ds920" not in (lab_api.lab_dir() / "ssh_config").read_text()
