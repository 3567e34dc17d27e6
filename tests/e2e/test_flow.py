"""The whole flow over real SSH against the lab: NAS, machine, service, status, re-runs."""
import sys
import urllib.request

import pytest

from tinsnip_tasks.plans import status as checks

GP = ("--machine", "gazette", "--env", "prod")
# homelab1's PID 1 is sshd: the user-unit items are not checked there
NO_SYSTEMD_ITEMS = [i for i, _ in checks.ITEMS if i not in checks.SYSTEMD_ONLY]
NAS_DIR = "/volume1/dynamicalsystem/gazette/prod"


def http(lab, host, port):
    return urllib.request.urlopen(f"http://{lab.ip(host)}:{port}/", timeout=10).read().decode()


def docker(lab, host, user, uid, args):
    return lab.run(host, f"sudo -u {user} env DOCKER_HOST=unix:///run/user/{uid}/docker.sock "
                         f"docker {args}", warn=True)


@pytest.fixture(scope="module")
def first_run(lab, cli):
    """gazette prod from scratch: nas.setup, machine.setup, service.deploy."""
    return [cli.inv("nas.setup", *GP), cli.inv("machine.setup", *GP),
            cli.inv("service.deploy", *GP, "--service", "hello")]


def test_first_run_reports_changes(first_run):
    for p in first_run:
        assert p.summaries and all(s["failed"] == 0 for s in p.summaries.values()), p.stdout
        assert sum(s["changed"] for s in p.summaries.values()) > 0, p.stdout
        print(*(l for l in p.stdout.splitlines() if "commands=" in l), sep="\n")


def test_nas_tree_and_export(lab, first_run):
    out = lab.run("ds412plus", f"stat -c '%n %u:%g %a' {NAS_DIR} {NAS_DIR}/state {NAS_DIR}/data "
                               f"{NAS_DIR}/config {NAS_DIR}/service").stdout.splitlines()
    assert [l.split()[1:] for l in out] == [["10100:10100", "750"]] * 5
    exports = lab.read("ds412plus", "/etc/exports")
    assert (f"{NAS_DIR} {lab.ip('homelab1')}(rw,sync,all_squash,anonuid=10100,anongid=10100,"
            f"no_subtree_check)") in exports.splitlines()


def test_machine_user_mount_links(lab, first_run):
    assert lab.run("homelab1", "id -u gazette-prod; id -g gazette-prod").stdout.split() == ["10100", "10100"]
    assert "gazette-prod:661913600:65536" in lab.read("homelab1", "/etc/subuid")
    fstab = lab.read("homelab1", "/etc/fstab")
    where = "/var/lib/tinsnip/gazette-prod/nfs"  # behind the gate; /mnt/gazette-prod leads there
    nas = lab.ip('ds412plus')
    assert f"{nas}:{NAS_DIR} {where} nfs rw,hard,vers=3,nosuid,nodev,_netdev 0 0" in fstab.splitlines()
    mounts = lab.run("homelab1", f"awk '$2==\"{where}\"' /proc/mounts").stdout
    assert mounts.startswith(f"{nas}:{NAS_DIR} {where} ")
    assert lab.run("homelab1", "readlink /mnt/gazette-prod").stdout.strip() == where
    link = lab.run("homelab1", "readlink /home/gazette-prod/.local/share/dynamicalsystem/@gazette").stdout
    assert link.strip() == "/mnt/gazette-prod/data"


def test_machine_env_on_the_nas(lab, first_run):
    text = lab.read("ds412plus", f"{NAS_DIR}/.machine/machine.env")
    values = dict(l.split("=", 1) for l in text.splitlines() if l and not l.startswith("#"))
    assert values["TIN_SERVICE_UID"] == "10100" and values["TIN_PORT_9"] == "10109"
    assert values["DOCKER_HOST"] == "unix:///run/user/10100/docker.sock"
    st = lab.run("ds412plus", f"stat -c '%u %a' {NAS_DIR}/.machine/machine.env").stdout.split()
    assert st == ["10100", "640"]


def test_service_answers_from_outside_and_runs_as_the_uid(lab, first_run):
    assert "hello from gazette-prod (uid 10100)" in http(lab, "homelab1", 10100)
    env = docker(lab, "homelab1", "gazette-prod", 10100, "exec hello-hello-1 env").stdout
    assert "TIN_SERVICE_UID=10100" in env and "TIN_PORT_0=10100" in env
    assert "TIN_SHEET=dynamicalsystem" in env


def test_container_writes_land_on_the_nas_owned_by_the_uid(lab, first_run):
    out = lab.run("ds412plus", f"stat -c '%u:%g' {NAS_DIR}/data/hello/www/index.html "
                               f"{NAS_DIR}/state/hello/environment").stdout.split()
    assert out == ["10100:10100", "10100:10100"]
    assert "TIN_MACHINE_NAME=gazette" in lab.read("ds412plus", f"{NAS_DIR}/state/hello/environment")


def test_daemon_outlives_the_ssh_session(lab, first_run):
    lab.close()  # every SSH session of the tests ends; the tasks' sessions ended already
    assert docker(lab, "homelab1", "gazette-prod", 10100, "info --format '{{.ServerVersion}}'").ok


def test_status_passes_every_item(cli, first_run):
    p = cli.inv("machine.status", *GP)
    steps = [s for s in p.recap["hosts"]["homelab1"]["steps"] if s["step"].startswith("status.")]
    assert [s["step"] for s in steps] == [f"status.{i}" for i in NO_SYSTEMD_ITEMS] + [
        "status.image", "status.forwards"], p.stdout
    assert all(s["status"] == "ok" for s in steps), p.stdout
    assert "hello: busybox:1.36 runs sha256:" in steps[-2]["detail"], p.stdout


def test_second_run_changes_nothing(lab, cli, first_run):
    def state():
        return {
            "container": docker(lab, "homelab1", "gazette-prod", 10100,
                                "inspect -f '{{.Id}} {{.State.StartedAt}}' hello-hello-1").stdout,
            "daemon": lab.run("homelab1", "pgrep -u gazette-prod -f dockerd").stdout,
            "files": lab.run("ds412plus", f"stat -c '%n %i %Y' {NAS_DIR}/.machine/machine.env "
                                          f"{NAS_DIR}/service/hello/docker-compose.yml "
                                          f"{NAS_DIR}/service/hello/.env /etc/exports").stdout,
            "fstab": lab.run("homelab1", "stat -c '%i %Y' /etc/fstab").stdout,
        }

    before = state()
    for args in (("nas.setup", *GP), ("machine.setup", *GP),
                 ("service.deploy", *GP, "--service", "hello")):
        p = cli.inv(*args)
        assert all(s["changed"] == 0 and s["failed"] == 0 for s in p.summaries.values()), p.stdout
    assert state() == before


def test_no_op_machine_setup_costs_one_command(cli, first_run):
    p = cli.inv("machine.setup", *GP)
    # the facts of user, mount, xdg, docker and env in one command; nothing to change
    assert p.summaries["homelab1"]["commands"] == 1, p.stdout
    steps = p.recap["hosts"]["homelab1"]["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [
        ("machine.user", "ok"), ("machine.mount", "ok"), ("xdg.link", "ok"),
        ("machine.docker-config", "ok"), ("machine.docker", "ok"), ("machine.env", "ok")]
    print("no-op machine.setup:", [l for l in p.stdout.splitlines() if "commands=" in l])


def test_dry_run_on_a_set_up_machine_shows_ok_and_changes_nothing(lab, cli, first_run):
    lab.run("homelab1", "chmod 600 /mnt/gazette-prod/.machine/machine.env")
    try:
        p = cli.inv("machine.setup", *GP, "--dry")
        assert "machine.env          would change" in p.stdout
        # a fresh copy written by the machine user, never a chmod through the name
        assert ("would run: as UID 10100: write" in p.stdout
                and "/mnt/gazette-prod/.machine/machine.env through a new temporary file"
                in p.stdout)
        assert lab.run("homelab1", "stat -c %a /mnt/gazette-prod/.machine/machine.env").stdout.strip() == "600"
    finally:
        cli.inv("machine.env", *GP)
    assert lab.run("homelab1", "stat -c %a /mnt/gazette-prod/.machine/machine.env").stdout.strip() == "640"


def test_dry_run_diffs_machine_env_in_full_and_verbose_shows_commands(lab, cli, first_run):
    """machine.env holds numbers and paths, no secret: its diff shows them (a secret's masking
    is in test_hardening.py)."""
    env = "/mnt/gazette-prod/.machine/machine.env"
    lab.run("homelab1", f"cp {env} /tmp/env.keep && echo TIN_EXTRA=stray-value >> {env}")
    dry = cli.inv("machine.env", *GP, "--dry")
    assert "-TIN_EXTRA=stray-value" in dry.stdout and \
        " TIN_CONFIG_DIR=/home/gazette-prod/.config/dynamicalsystem/@gazette" in dry.stdout, dry.stdout
    assert "***" not in dry.stdout
    assert lab.run("homelab1", f"grep -c stray-value {env}").stdout.strip() == "1"
    p = cli.inv("machine.env", *GP, "-v")
    assert "homelab1| $ read facts" in p.stderr, p.stderr
    assert "-TIN_EXTRA=stray-value" in p.stdout and "ran: as UID 10100: write " in p.stdout \
        and f"to {env} through a new temporary file" in p.stdout, p.stdout
    assert lab.run("homelab1", f"cmp {env} /tmp/env.keep").ok


def test_stopped_container_fails_status_and_deploy_restarts_it(lab, cli, first_run):
    docker(lab, "homelab1", "gazette-prod", 10100, "stop -t 0 hello-hello-1")
    p = cli.inv("machine.status", *GP, check=False)
    assert p.returncode == 1 and "failed" in p.stdout
    p = cli.inv("service.deploy", *GP, "--service", "hello")
    assert "service.up           changed" in p.stdout
    assert "hello from gazette-prod" in http(lab, "homelab1", 10100)


def test_a_project_started_by_hand_with_another_file_is_put_back(lab, cli, first_run):
    """The seed's "remove env_file" mistake made by hand: the compose file edited and started
    again by the user. The next deploy writes the file back and starts the project again, so
    the container runs the configuration the deploy recorded."""
    svc = "/mnt/gazette-prod/service/hello"
    hashes = ("sudo -u gazette-prod env DOCKER_HOST=unix:///run/user/10100/docker.sock docker "
              "inspect -f '{{index .Config.Labels \"com.docker.compose.config-hash\"}}' "
              "hello-hello-1")
    before = lab.run("homelab1", f"cd / && {hashes}").stdout.strip()
    assert f"hash hello {before}" in lab.read("homelab1", f"{svc}/.tinsnip-deployed")
    lab.run("homelab1", f"cd {svc} && sudo -u gazette-prod sed -i '/env_file:/,/- .env/d' "
                        "docker-compose.yml && sudo -u gazette-prod bash -c 'set -a; "
                        ". /mnt/gazette-prod/.machine/machine.env; . ./.env; set +a; "
                        "docker compose up -d'")
    assert lab.run("homelab1", f"cd / && {hashes}").stdout.strip() != before
    p = cli.inv("service.deploy", *GP, "--service", "hello")
    assert "service.files        changed" in p.stdout, p.stdout
    assert "service.up           changed" in p.stdout, p.stdout
    assert lab.run("homelab1", f"cd / && {hashes}").stdout.strip() == before
    assert cli.inv("machine.status", *GP).returncode == 0
    again = cli.inv("service.deploy", *GP, "--service", "hello")
    assert again.summaries["homelab1"]["changed"] == 0


def test_failure_halfway_then_the_next_run_finishes(lab, cli, first_run):
    """A step that fails stops the run with a non-zero exit; fixed, the next run completes."""
    env = "/mnt/gazette-prod/.machine/machine.env"
    lab.run("homelab1", f"cp {env} /tmp/machine.env.keep && rm -f {env} && mkdir {env}")
    try:
        p = cli.inv("machine.setup", *GP, check=False)
        assert p.returncode == 1 and "machine.env" in p.stdout and "failed=1" in p.stdout
        assert "is a directory, not a file" in p.stdout
    finally:
        lab.run("homelab1", f"rmdir {env}")
    p = cli.inv("machine.setup", *GP)
    assert p.summaries["homelab1"]["changed"] == 1
    assert lab.run("homelab1", f"cmp {env} /tmp/machine.env.keep").ok


def test_fab_with_a_host_from_the_command_line(cli, first_run):
    p = cli.fab("-H", "homelab1", "machine.status", *GP)
    s = p.summaries["homelab1"]
    assert s["ok"] >= len(NO_SYSTEMD_ITEMS) and s["changed"] == 0 and s["failed"] == 0, p.stdout


def test_makefile_targets_run_the_flow_and_stop_at_the_first_failure(cli, first_run, tmp_path):
    mk = tmp_path / "Makefile"
    cli.inv("service.makefile", *GP, "--service", "hello", "--output", str(mk))
    ok = cli.run(["make", "-f", str(mk), "setup", "deploy", f"INV={sys.executable} -m invoke"])
    assert "changed=0" in ok.stdout and "service.deploy" in ok.stdout
    bad = cli.run(["make", "-f", str(mk), "setup", "deploy", "TIN_ENV=prd",
                   f"INV={sys.executable} -m invoke"], check=False)
    assert bad.returncode != 0
    assert "service.deploy" not in bad.stdout and "machine.setup" not in bad.stdout
