"""Power cuts and reboots of homelab4's kernel.

First a power cut of the whole homelab where the NAS comes back last: both hosts are powered
off (the machine first, after a file of its export was locked: its unmount comes before
rpc-statd stops, as machine.mount ordered them), homelab4 boots while ds920 is down, its mount gives up (systemd's
90 s), the rootless daemon starts without it; machine.status names the missing mount. Once
ds920 is back, one ``machine.setup`` brings back the mount and the service: it mounts, and
restarts the daemon, which had started before the mount (its containers could not start then);
the daemon starts them again by their restart policy.

Then a real reboot (``lab.reboot homelab4``) with the NAS up and no tinsnip run afterwards:
systemd mounts the exports from fstab once the network is online, linger starts the user's
systemd and with it the rootless daemon, whose restart policy starts the service again; then
machine.status passes.
"""
import time

import pytest

from tinsnip_lab.testing import FIGURES

from .conftest import (HOST, NAS, Env, changed, fstab_entry, http, real_mount, status,
                       steps)


def boot_id(lab, host):
    return lab.run(host, "cat /proc/sys/kernel/random/boot_id").stdout.strip()


def lab_task(lab, cli, *args):
    """``inv lab.*`` as a person runs it; its output goes to the session's figures."""
    lab.close()  # the host's sshd goes away; reconnect afterwards
    started = time.monotonic()
    p = cli.inv(*args)
    FIGURES.append(f"inv {' '.join(args)}: {time.monotonic() - started:.1f}s: "
                   + " | ".join(p.stdout.strip().splitlines()))
    return p


def starts(lab, env, wait=180):
    """How many times the counter service has started (it keeps the count on ds920)."""
    page = http(lab, HOST, env.uid + 1, wait=wait)
    assert page.startswith(f"counter from gazette-prod uid {env.uid} starts "), page
    return int(page.split()[-1])


def mount_of(lab, env):
    where = real_mount(lab, env)
    return lab.run(HOST, f"awk '$2 == \"{where}\" {{print $1, $3}}' /proc/mounts").stdout.split()


def shutdown_order(lab, env):
    """The last boot's shutdown as the journal tells it: the line numbers of the unmount of
    ``env``'s export and of rpc-statd's stop."""
    unit = lab.run(HOST, f"systemd-escape -p --suffix=mount {real_mount(lab, env)}").stdout.strip()
    lines = lab.run(HOST, "journalctl -b -1 -o cat --no-pager").stdout.splitlines()
    where = {}
    for i, line in enumerate(lines):
        if line.startswith(f"Unmounted {unit}"):
            where["unmounted"] = i
        elif line.startswith("Stopped rpc-statd.service"):
            where["statd"] = i
    return where


@pytest.fixture(scope="module")
def nas_came_back_last(kernel_lab, kcli, prod, deployed):
    """Everything powered off (the machine first), then homelab4 boots with ds920 still down,
    then ds920 boots; machine.status after it."""
    count = starts(kernel_lab, prod)
    # an NFS lock, as a container's SQLite takes one: the kernel client asks rpc-statd
    kernel_lab.run(HOST, f"sudo -u {prod.user} flock {prod.mount}/data/.tinsnip-lock-probe true")
    lab_task(kernel_lab, kcli, "lab.poweroff", HOST)
    lab_task(kernel_lab, kcli, "lab.poweroff", NAS)
    lab_task(kernel_lab, kcli, "lab.boot", HOST)
    down = {"mount": mount_of(kernel_lab, prod), "shutdown": shutdown_order(kernel_lab, prod),
            "unit": kernel_lab.run(HOST, f"systemctl is-failed $(systemd-escape -p "
                                         f"--suffix=mount {real_mount(kernel_lab, prod)})",
                                   warn=True).stdout,
            "daemon": kernel_lab.run(HOST, f"{prod.systemctl} is-active docker.service",
                                     warn=True).stdout.strip(), "starts": count}
    lab_task(kernel_lab, kcli, "lab.boot", NAS)
    down["status"] = status(kcli, prod)  # it reads the NAS too
    down["after"] = mount_of(kernel_lab, prod)  # ds920 is up: still nothing mounted
    return down


def test_with_the_nas_down_the_mount_gives_up_and_the_daemon_starts_without_it(
        nas_came_back_last):
    assert nas_came_back_last["mount"] == []
    assert nas_came_back_last["unit"].strip() == "failed"
    assert nas_came_back_last["daemon"] == "active"


def test_the_export_was_unmounted_before_rpc_statd_stopped(nas_came_back_last):
    """A file of the export was locked: its unmount asks rpc-statd, which machine.mount
    ordered before the mounts (stopped after them); stopped first, the unmount waits a minute."""
    order = nas_came_back_last["shutdown"]
    assert {"unmounted", "statd"} <= set(order), order
    assert order["unmounted"] < order["statd"], order


def test_status_names_the_missing_mount(nas_came_back_last):
    p, items = nas_came_back_last["status"]
    assert p.returncode == 1 and items["mount"][0] == "failed", p.stdout
    assert "inv machine.mount --machine gazette --env prod" in items["mount"][1]
    assert nas_came_back_last["after"] == []  # nothing retries a failed mount by itself


def test_one_machine_setup_brings_back_mount_and_service(kernel_lab, kcli, prod,
                                                        nas_came_back_last):
    p = kcli.inv("machine.setup", *prod.args)
    done = {step for step, (state, _) in steps(p, HOST).items() if state == "changed"}
    assert done == {"machine.mount", "machine.docker"}, p.stdout
    assert mount_of(kernel_lab, prod) == [fstab_entry(kernel_lab, prod)[0], "nfs"]
    assert "hello from gazette-prod" in http(kernel_lab, HOST, prod.uid, wait=180)
    assert starts(kernel_lab, prod) == nas_came_back_last["starts"] + 1
    again = kcli.inv("machine.setup", *prod.args)
    assert changed(again) == 0, again.stdout


@pytest.fixture(scope="module")
def rebooted(kernel_lab, kcli, prod, deployed):
    """``lab.reboot homelab4`` with ds920 up; what ran before it."""
    before = prod.docker(kernel_lab, "inspect -f '{{.Id}} {{.State.StartedAt}}' hello-hello-1"
                         ).stdout.split() + [starts(kernel_lab, prod)]
    old = boot_id(kernel_lab, HOST)
    p = lab_task(kernel_lab, kcli, "lab.reboot", HOST)
    assert f"lab: {HOST} rebooted" in p.stdout, p.stdout
    assert boot_id(kernel_lab, HOST) != old
    return before


def test_the_mounts_are_back_from_fstab(kernel_lab, site, prod, rebooted):
    test = Env(site, "test")  # set up by test_isolation; machine.setup of prod left it down
    there = kernel_lab.run(HOST, f"id -u {test.user}", warn=True).ok
    for env in (prod, test) if there else (prod,):
        assert mount_of(kernel_lab, env) == [fstab_entry(kernel_lab, env)[0], "nfs"]


def test_the_daemon_is_back_through_linger_and_the_service_answers(kernel_lab, prod, rebooted):
    assert kernel_lab.run(HOST, f"{prod.systemctl} is-active docker.service"
                          ).stdout.strip() == "active"
    assert "hello from gazette-prod" in http(kernel_lab, HOST, prod.uid, wait=180)
    cid, started = prod.docker(kernel_lab, "inspect -f '{{.Id}} {{.State.StartedAt}}' "
                                           "hello-hello-1").stdout.split()
    assert cid == rebooted[0] and started != rebooted[1]
    # the counter started again and read its count from ds920
    assert starts(kernel_lab, prod) == rebooted[2] + 1


def test_status_passes_with_no_tinsnip_run_between(kcli, prod, rebooted):
    p, _ = status(kcli, prod)
    assert p.returncode == 0, p.stdout
