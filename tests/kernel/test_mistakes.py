"""The seed's "Common Mistakes", made for real on homelab4 (its own kernel, systemd, the kernel
NFS client against ds920's kernel NFS server): each is broken on purpose, its symptom seen,
machine.status names the cause and the fix, and the fix named puts it right. The rows that
depend on the kernel client or on systemd are here; the others (a foreign DOCKER_HOST, a unit
not enabled, a daemon from a login session) are also broken on homelab3
(tests/e2e/test_systemd_flow.py).

Two mistakes that do not touch each other are made at once and named by one machine.status
(the daemon's unit without its ``UnsetEnvironment`` line, machine.env without DOCKER_HOST);
linger is turned off after they are fixed, and its machine.status also shows the first two put
right. The module ends with a machine.status that passes."""
import io

import pytest

from .conftest import HOST, NAS, changed, failed, http, status


def answers(lab, env):
    """Wait until ``env``'s daemon answers (a restart returns before its socket does)."""
    lab.run(HOST, f"i=0; until sudo -u {env.user} env DOCKER_HOST=unix:///run/user/{env.uid}"
                  f"/docker.sock docker version >/dev/null 2>&1; do i=$((i+1)); "
                  f"[ $i -gt 600 ] && exit 1; sleep 0.2; done", timeout=300)


def root_dir(lab, env):
    return env.docker(lab, "info --format '{{.DockerRootDir}}'").stdout.strip()


@pytest.fixture(scope="module")
def broken(kernel_lab, kcli, prod, deployed):
    """The seed's "Remove unset XDG_*" (the daemon inherits XDG_DATA_HOME on the NFS mount) and
    "Remove source .machine/machine.env" (compose without DOCKER_HOST), then machine.status."""
    unit = kernel_lab.read(HOST, prod.unit)
    wrong = unit.replace("UnsetEnvironment=XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME\n",
                         f"Environment=XDG_DATA_HOME={prod.mount}/data\n")
    assert wrong != unit
    kernel_lab.run(HOST, f"cat > {prod.unit}", in_stream=io.StringIO(wrong))
    env_file = f"{prod.mount}/.machine/machine.env"
    kernel_lab.run(HOST, f"sudo -u {prod.user} sed -i '/^DOCKER_HOST=/d' {env_file}")
    kernel_lab.run(HOST, f"{prod.systemctl} daemon-reload && "
                         f"{prod.systemctl} restart docker.service", timeout=300)
    answers(kernel_lab, prod)
    p, items = status(kcli, prod)
    return {"unit": unit, "env_file": env_file, "run": p, "items": items}


def test_xdg_data_home_on_nfs_moves_the_daemon_onto_the_mount_and_images_fail(
        kernel_lab, prod, broken):
    """Its data on the NAS, every image layer with a file not owned by root fails with a
    permission error (all_squash refuses the chown)."""
    assert root_dir(kernel_lab, prod) == f"{prod.mount}/data/docker"
    kernel_lab.run(HOST, "rm -rf /tmp/owned && mkdir /tmp/owned && cp /bin/busybox "
                         "/tmp/owned/ && tar --owner=1000 --group=1000 -cf /tmp/owned.tar "
                         "-C /tmp/owned . && chmod 644 /tmp/owned.tar")
    imported = prod.docker(kernel_lab, "import /tmp/owned.tar tinsnip-probe/owned:1")
    assert not imported.ok and "lchown" in imported.stderr
    assert "operation not permitted" in imported.stderr
    # the daemon's data is on the NAS now, and the service's container is not in it
    assert kernel_lab.run(NAS, f"test -d {prod.nas_dir}/data/docker", warn=True).ok
    assert "hello-hello-1" not in prod.docker(kernel_lab, "ps -a").stdout


def test_status_names_both_causes_and_their_fixes(prod, broken):
    p, items = broken["run"], broken["items"]
    assert p.returncode == 1 and {"xdg", "docker_host"} <= set(failed(items)), p.stdout
    assert f"XDG_DATA_HOME={prod.mount}/data" in items["xdg"][1]
    assert "inv machine.docker --machine gazette --env prod" in items["xdg"][1]
    assert "inv machine.env --machine gazette --env prod" in items["docker_host"][1]


def test_machine_docker_and_machine_env_put_them_right(kernel_lab, kcli, prod, broken):
    fix = kcli.inv("machine.docker", *prod.args)
    assert changed(fix) == 1, fix.stdout
    assert kernel_lab.read(HOST, prod.unit) == broken["unit"]
    assert root_dir(kernel_lab, prod) == f"/home/{prod.user}/.local/share/docker"
    assert "hello from gazette-prod" in http(kernel_lab, HOST, prod.uid, wait=120)
    # what the wrong daemon left on the NAS is the operator's to remove
    kernel_lab.run(NAS, f"rm -rf {prod.nas_dir}/data/docker")
    assert changed(kcli.inv("machine.env", *prod.args)) == 1
    assert f"DOCKER_HOST=unix:///run/user/{prod.uid}/docker.sock" in \
        kernel_lab.read(HOST, broken["env_file"]).splitlines()


def test_linger_off_stops_the_daemon_and_machine_docker_turns_it_on(
        kernel_lab, kcli, prod, broken):
    kernel_lab.run(HOST, f"loginctl disable-linger {prod.user}")
    # no session of the user is left: its systemd, and so the daemon, stop
    kernel_lab.run(HOST, f"i=0; while pgrep -u {prod.uid} -x dockerd >/dev/null; do "
                         "i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.2; done", timeout=120)
    p, items = status(kcli, prod)
    assert p.returncode == 1 and {"linger", "daemon"} <= set(failed(items)), p.stdout
    assert f"loginctl enable-linger {prod.user}" in items["linger"][1]
    assert items["docker_host"][0] == "ok", p.stdout  # the fix before held
    fix = kcli.inv("machine.docker", *prod.args)
    assert changed(fix) == 1, fix.stdout
    assert kernel_lab.run(HOST, f"test -e /var/lib/systemd/linger/{prod.user}", warn=True).ok
    assert "hello from gazette-prod" in http(kernel_lab, HOST, prod.uid, wait=120)
    p, _ = status(kcli, prod)
    assert p.returncode == 0, p.stdout
