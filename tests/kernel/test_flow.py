"""The seed's flow on real kernels: gazette prod on homelab4 against ds920's kernel NFS server,
mounted by the kernel NFS client from the fstab line tinsnip writes."""
import shlex

import pytest

from .conftest import HOST, NAS, PYHELLO, changed, deploy, fstab_entry, http, status, timed


def test_first_run_succeeds_everywhere(deployed):
    for p in deployed:
        assert p.summaries and all(s["failed"] == 0 for s in p.summaries.values()), p.stdout
        assert changed(p) > 0, p.stdout


def test_the_mount_is_the_kernel_nfs_client_from_the_fstab_line(kernel_lab, deployed, prod):
    entry = fstab_entry(kernel_lab, prod)
    assert entry[0].endswith(f":{prod.nas_dir}") and entry[2] == "nfs", entry
    assert {"hard", "vers=3", "_netdev"} <= set(entry[3].split(",")), entry
    source, fstype, options = kernel_lab.run(
        HOST, f"awk '$2 == \"{entry[1]}\" {{print $1, $3, $4}}' /proc/mounts").stdout.split()
    assert (source, fstype) == (entry[0], "nfs")
    assert "vers=3" in options and "hard" in options
    unit = kernel_lab.run(HOST, f"systemd-escape -p --suffix=mount {entry[1]}").stdout.strip()
    show = kernel_lab.run(HOST, f"systemctl show {shlex.quote(unit)} -p SourcePath "
                                "-p ActiveState -p After")
    assert "SourcePath=/etc/fstab" in show.stdout and "ActiveState=active" in show.stdout
    assert "network-online.target" in show.stdout
    # the kernel's own client: no FUSE process, the nfs module loaded
    assert "nfs" in kernel_lab.run(HOST, "cat /proc/filesystems").stdout.split()
    assert not kernel_lab.run(HOST, "pgrep -f fuse.nfs", warn=True).ok


def test_the_services_answer(kernel_lab, deployed, prod):
    assert f"hello from gazette-prod (uid {prod.uid})" in http(kernel_lab, HOST, prod.uid)
    page = http(kernel_lab, HOST, prod.uid + 1)
    assert page.startswith(f"counter from gazette-prod uid {prod.uid} starts 1"), page
    # built on homelab4 from the folder's Dockerfile by the user's own daemon
    assert prod.docker(kernel_lab, "image inspect counter-counter").ok


def test_files_containers_write_land_on_ds920_as_the_environment_uid(kernel_lab, deployed, prod):
    assert prod.docker(kernel_lab, "exec hello-hello-1 sh -c 'echo probe > /data/probe'").ok
    st = kernel_lab.run(NAS, f"stat -c '%u %g' {prod.nas_dir}/data/hello/probe "
                             f"{prod.nas_dir}/data/hello/www/index.html "
                             f"{prod.nas_dir}/data/counter/starts").stdout.split()
    assert st == [str(prod.uid)] * 6
    # all_squash: even a container's root cannot hand a file to another owner
    chown = prod.docker(kernel_lab, "exec -u 0 hello-hello-1 sh -c 'chown 1:1 /data/probe'")
    assert not chown.ok and "Operation not permitted" in chown.stderr


def test_machine_status_passes(kcli, deployed, prod):
    p, items = timed("machine.status", status, kcli, prod)
    assert p.returncode == 0, p.stdout
    assert items["mount"][0] == "ok" and "(nfs" in items["mount"][1]
    assert {"linger", "unit", "session", "xdg", "docker_host", "writable"} <= set(items)


def test_a_second_run_changes_nothing(kcli, deployed, prod):
    """The whole flow again in one run (site.up: nas.setup's, machine.setup's and both deploys'
    steps) reports nothing changed."""
    p = timed("site.up --limit gazette:prod (second run)", kcli.inv, "site.up", "--limit",
              "gazette:prod")
    assert changed(p) == 0 and all(s["failed"] == 0 for s in p.summaries.values()), p.stdout
    ran = {line.split()[1] for line in p.stdout.splitlines()
           if line.split()[:1] in ([HOST], [NAS]) and len(line.split()) > 2}
    assert {"nas.export", "machine.mount", "machine.docker", "service.up"} <= ran, p.stdout


@pytest.mark.skipif(not PYHELLO, reason="the uv example builds Python under emulation (minutes): "
                                        "TINSNIP_KERNEL_PYHELLO=1 runs it")
def test_the_uv_example_builds_on_homelab4_and_writes_to_ds920(kernel_lab, kcli, deployed, prod):
    p = deploy(kernel_lab, kcli, prod, "pyhello", "first run")
    assert changed(p) > 0 and all(s["failed"] == 0 for s in p.summaries.values()), p.stdout
    page = http(kernel_lab, HOST, prod.uid + 2)
    assert page.startswith(f"pyhello from gazette-prod uid {prod.uid} visits 1"), page
    assert kernel_lab.run(NAS, f"stat -c %u {prod.nas_dir}/data/pyhello/visits").stdout.strip() \
        == str(prod.uid)
    assert changed(deploy(kernel_lab, kcli, prod, "pyhello", "second run")) == 0
