"""`lab.down` returns only when every process, namespace, link, cgroup and mount of the lab is
gone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tinsnip_lab as lab_api
from tinsnip_lab import lifecycle, network, nspawn

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def test_down_leaves_nothing_behind_when_it_returns(lab):
    pids = [p for ns in network.lab_namespaces() for p in network.pids_in_netns(ns)]
    assert len(pids) >= 3  # at least one process per host
    # `inv lab.down` in a process of its own: the hosts' processes are not its children, so
    # the zombies they leave are reaped by PID 1, and down must wait for that.
    subprocess.run([sys.executable, "-m", "invoke", "lab.down"], cwd=ROOT, check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    try:
        assert [p for p in pids if os.path.exists(f"/proc/{p}")] == []
        assert network.lab_namespaces() == [] and network.lab_links() == []
        assert lifecycle.lab_mounts() == []
        assert nspawn.leftover_cgroups() == []
        assert not Path("/run/systemd/nspawn/propagate/homelab3").exists()
        assert not lab_api.is_up()
    finally:
        lab_api.up(log=lambda msg: None)
        lab.close()
    assert lab.run("homelab1", "hostname").stdout.strip() == "homelab1"
