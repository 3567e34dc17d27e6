"""The whole flow on homelab3, whose PID 1 is systemd: the rootless daemon is a lingering user
unit, and machine.status catches each of the seed's failure modes (each broken here for real)."""
import io
import time

import pytest

from .conftest import http

HOST, USER, UID = "homelab3", "gateway-prod", 10300
GW = ("--machine", "gateway", "--env", "prod")
UNIT = f"/home/{USER}/.config/systemd/user/docker.service"
SYSTEMCTL = f"systemctl --user -M {USER}@"
SCRIPT = "/usr/share/docker.io/contrib/dockerd-rootless.sh"
STEPS = ("machine.user", "machine.mount", "xdg.link", "machine.docker", "machine.env")


def docker(lab, args):
    return lab.run(HOST, f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock "
                         f"docker {args}", warn=True)


def status(cli):
    p = cli.inv("machine.status", *GW, check=False)
    items = {}
    for line in p.stdout.splitlines():
        fields = line.split(None, 3)
        if len(fields) >= 3 and fields[0] == HOST and fields[1].startswith("status."):
            items[fields[1][7:]] = (fields[2], fields[3] if len(fields) > 3 else "")
    return p, items


def failed(items):
    return sorted(k for k, (state, _) in items.items() if state != "ok")


@pytest.fixture(scope="module")
def first_run(lab, e2e_cli):
    e2e_cli.inv("nas.station", "--sheet", "dynamicalsystem")
    return [e2e_cli.inv("nas.setup", *GW), e2e_cli.inv("machine.setup", *GW),
            e2e_cli.inv("service.deploy", *GW, "--service", "hello")]


@pytest.fixture
def healthy(lab, e2e_cli, first_run):
    """Each breaking test starts from, and leaves, a passing machine.status."""
    p, items = status(e2e_cli)
    assert p.returncode == 0, p.stdout
    yield
    p, items = status(e2e_cli)
    assert p.returncode == 0, p.stdout


def test_pid_1_is_systemd(lab):
    assert lab.run(HOST, "cat /proc/1/comm").stdout.strip() == "systemd"
    assert lab.run(HOST, "systemctl is-system-running").stdout.strip() == "running"


def test_first_run_installs_a_lingering_user_unit(lab, first_run):
    for p in first_run:
        assert p.summaries and all(s["failed"] == 0 for s in p.summaries.values()), p.stdout
    assert lab.run(HOST, f"test -e /var/lib/systemd/linger/{USER}", warn=True).ok
    assert lab.run(HOST, f"{SYSTEMCTL} is-enabled docker.service").stdout.strip() == "enabled"
    assert lab.run(HOST, f"{SYSTEMCTL} is-active docker.service").stdout.strip() == "active"
    unit = lab.read(HOST, UNIT)
    assert f"ExecStart={SCRIPT}\n" in unit
    assert "UnsetEnvironment=XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME" in unit
    st = lab.run(HOST, f"stat -c '%u %a' {UNIT}").stdout.split()
    assert st == [str(UID), "644"]


def test_daemon_runs_in_the_unit_and_answers_on_the_users_socket(lab, first_run):
    pid = lab.run(HOST, f"pgrep -u {UID} -x dockerd").stdout.split()
    assert len(pid) == 1
    cgroup = lab.run(HOST, f"cat /proc/{pid[0]}/cgroup").stdout
    assert f"/user.slice/user-{UID}.slice/user@{UID}.service/app.slice/docker.service" in cgroup
    assert docker(lab, "info --format '{{.SecurityOptions}}'").stdout.count("rootless") == 1
    env = lab.read("ds412plus", "/volume1/dynamicalsystem/gateway/prod/.machine/machine.env")
    assert f"DOCKER_HOST=unix:///run/user/{UID}/docker.sock" in env.splitlines()


def test_daemon_outlives_every_ssh_session(lab, first_run):
    lab.close()
    time.sleep(0.5)
    assert docker(lab, "info --format '{{.ServerVersion}}'").ok
    assert "hello from gateway-prod (uid 10300)" in http(lab, HOST, UID)


def test_status_passes_every_item_including_the_systemd_ones(e2e_cli, first_run):
    p, items = status(e2e_cli)
    assert p.returncode == 0 and not failed(items), p.stdout
    assert {"linger", "unit", "session", "xdg", "docker_host", "mount"} <= set(items)


def test_second_run_of_every_task_changes_nothing(lab, e2e_cli, first_run):
    before = (lab.run(HOST, f"pgrep -u {UID} -x dockerd").stdout,
              docker(lab, "inspect -f '{{.State.StartedAt}}' hello-hello-1").stdout,
              lab.run(HOST, f"stat -c '%i %Y' {UNIT}").stdout)
    for args in (("nas.setup", *GW), ("machine.setup", *GW), *((s, *GW) for s in STEPS),
                 ("service.deploy", *GW, "--service", "hello")):
        p = e2e_cli.inv(*args)
        assert all(s["changed"] == 0 and s["failed"] == 0 for s in p.summaries.values()), p.stdout
    after = (lab.run(HOST, f"pgrep -u {UID} -x dockerd").stdout,
             docker(lab, "inspect -f '{{.State.StartedAt}}' hello-hello-1").stdout,
             lab.run(HOST, f"stat -c '%i %Y' {UNIT}").stdout)
    assert after == before


def test_linger_off_is_named_and_machine_docker_turns_it_on(lab, e2e_cli, healthy):
    lab.run(HOST, f"loginctl disable-linger {USER}")
    p, items = status(e2e_cli)
    assert p.returncode == 1 and "linger" in failed(items), p.stdout
    assert f"loginctl enable-linger {USER}" in items["linger"][1]
    fix = e2e_cli.inv("machine.docker", *GW)
    assert "loginctl enable-linger" in fix.stdout or fix.summaries[HOST]["changed"] == 1
    assert lab.run(HOST, f"test -e /var/lib/systemd/linger/{USER}", warn=True).ok
    assert "hello from gateway-prod" in http(lab, HOST, UID, wait=20)


def test_unit_not_enabled_is_named_and_machine_docker_enables_it(lab, e2e_cli, healthy):
    lab.run(HOST, f"{SYSTEMCTL} disable docker.service")
    p, items = status(e2e_cli)
    assert failed(items) == ["unit"], p.stdout
    assert f"{SYSTEMCTL} enable --now docker.service" in items["unit"][1]
    assert e2e_cli.inv("machine.docker", *GW).summaries[HOST]["changed"] == 1
    assert lab.run(HOST, f"{SYSTEMCTL} is-enabled docker.service").stdout.strip() == "enabled"


def test_xdg_in_the_daemons_environment_is_named_and_machine_docker_rewrites_the_unit(
        lab, e2e_cli, healthy):
    unit = lab.read(HOST, UNIT)
    edited = unit.replace("UnsetEnvironment=XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME\n",
                          "Environment=XDG_CONFIG_HOME=/mnt/gateway-prod/config\n")
    assert edited != unit
    lab.run(HOST, f"cat > {UNIT}", in_stream=io.StringIO(edited))
    lab.run(HOST, f"{SYSTEMCTL} daemon-reload && {SYSTEMCTL} restart docker.service")
    p, items = status(e2e_cli)
    assert "xdg" in failed(items), p.stdout
    assert "XDG_CONFIG_HOME=/mnt/gateway-prod/config" in items["xdg"][1]
    assert "inv machine.docker --machine gateway --env prod" in items["xdg"][1]
    assert e2e_cli.inv("machine.docker", *GW).summaries[HOST]["changed"] == 1
    assert lab.read(HOST, UNIT) == unit
    assert "hello from gateway-prod" in http(lab, HOST, UID, wait=20)


def test_docker_host_naming_another_socket_is_named_and_machine_env_fixes_it(
        lab, e2e_cli, healthy):
    env = "/mnt/gateway-prod/.machine/machine.env"
    lab.run(HOST, f"sed -i 's|^DOCKER_HOST=.*|DOCKER_HOST=unix:///var/run/docker.sock|' {env}")
    p, items = status(e2e_cli)
    assert "docker_host" in failed(items), p.stdout
    assert "DOCKER_HOST=unix:///var/run/docker.sock, not unix:///run/user/10300/docker.sock" \
        in items["docker_host"][1]
    assert "inv machine.env --machine gateway --env prod" in items["docker_host"][1]
    assert e2e_cli.inv("machine.env", *GW).summaries[HOST]["changed"] == 1


def test_daemon_from_a_login_session_is_named_refused_and_then_replaced(lab, e2e_cli, healthy):
    lab.run(HOST, f"{SYSTEMCTL} stop docker.service")
    # the seed's old way: the daemon started by hand from an SSH login
    lab.run(HOST, f"su - {USER} -c 'PATH=/usr/sbin:/usr/bin:/sbin:/bin "
                  f"XDG_RUNTIME_DIR=/run/user/{UID} setsid -f {SCRIPT} "
                  f"> /tmp/stray-dockerd.log 2>&1 < /dev/null'")
    lab.run(HOST, f"i=0; until sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock "
                  f"docker version >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 100 ] && exit 1; "
                  f"sleep 0.2; done")
    p, items = status(e2e_cli)
    assert failed(items) == ["session"], p.stdout
    assert "session-" in items["session"][1] and "pkill -u gateway-prod -x rootlesskit" \
        in items["session"][1]
    refused = e2e_cli.inv("machine.docker", *GW, check=False)
    assert refused.returncode == 1 and "started outside the unit" in refused.stdout
    lab.run(HOST, f"pkill -u {USER} -x rootlesskit; i=0; while pgrep -u {UID} -x dockerd "
                  f">/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done")
    assert e2e_cli.inv("machine.docker", *GW).summaries[HOST]["changed"] == 1
    assert "hello from gateway-prod" in http(lab, HOST, UID, wait=20)


def test_unit_uses_the_rootless_script_the_host_has(lab, e2e_cli, healthy):
    moved = "/usr/bin/dockerd-rootless.sh"
    lab.run(HOST, f"mv {SCRIPT} {moved}")
    try:
        assert e2e_cli.inv("machine.docker", *GW).summaries[HOST]["changed"] == 1
        assert f"ExecStart={moved}\n" in lab.read(HOST, UNIT)
        main = lab.run(HOST, f"{SYSTEMCTL} show -p ExecMainPID --value docker.service").stdout.strip()
        assert moved in lab.run(HOST, f"tr '\\0' ' ' < /proc/{main}/cmdline").stdout
    finally:
        lab.run(HOST, f"mv {moved} {SCRIPT}")
    assert e2e_cli.inv("machine.docker", *GW).summaries[HOST]["changed"] == 1
    assert f"ExecStart={SCRIPT}\n" in lab.read(HOST, UNIT)


def test_teardown_on_systemd_disables_the_unit_and_linger_and_ends_every_process(lab, e2e_cli):
    """machine.teardown of gateway test on homelab3: the unit stopped, linger off, no process
    of the user left, user and home gone; the NAS keeps its data; a second run changes nothing."""
    gt, uid = ("--machine", "gateway", "--env", "test"), 10310
    for task in ("nas.setup", "machine.setup"):
        e2e_cli.inv(task, *gt)
    e2e_cli.inv("service.deploy", *gt, "--service", "hello")
    assert "hello from gateway-test" in http(lab, HOST, uid)
    p = e2e_cli.inv("machine.teardown", *gt)
    assert p.summaries[HOST]["changed"] > 0, p.stdout
    assert not lab.run(HOST, "test -e /var/lib/systemd/linger/gateway-test", warn=True).ok
    assert not lab.run(HOST, f"pgrep -u {uid}", warn=True).ok
    assert not lab.run(HOST, "id gateway-test", warn=True).ok
    assert not lab.run(HOST, "test -e /home/gateway-test", warn=True).ok
    assert lab.run(HOST, "grep -c ' /var/lib/tinsnip/gateway-test/nfs \\| /mnt/gateway-test ' /proc/mounts",
                   warn=True).stdout.strip() == "0"
    assert lab.run("ds412plus", "test -d /volume1/dynamicalsystem/gateway/test/data/hello",
                   warn=True).ok
    assert e2e_cli.inv("machine.teardown", *gt).summaries[HOST]["changed"] == 0
