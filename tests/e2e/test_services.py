"""Services of a user's own, over real SSH on the lab: from folders outside the repository, the
uv example built from source, the preflight, forwarded ports, logs and removal.

The tests run in file order and share one machine-environment (webapps prod on homelab2).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, Cli, http
from tinsnip_lab import pybase

WP = ("--machine", "webapps", "--env", "prod")
USER, UID, HOST = "webapps-prod", 14000, "homelab2"
NAS_DIR = "/volume1/dynamicalsystem/webapps/prod"
EXAMPLE = ROOT / "examples" / "pyhello"

# A compose file written for another deployment: its own variable names, two services, a
# private network, a profile, and a bind mount that must exist (create_host_path: false).
SIGNAL = """\
services:
  web:
    image: tinsnip/busybox:1.35
    init: true
    env_file: [../../.machine/machine.env, .env]
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    ports: ["${WEB_PORT}:8080"]
    networks: [inner]
    command: ["sh", "-c", "mkdir -p /tmp/www && echo signal-web > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
  debug:
    image: tinsnip/busybox:1.35
    profiles: [debug]
    command: ["sleep", "1000"]
  relay:
    image: tinsnip/busybox:1.35
    init: true
    env_file: [../../.machine/machine.env, .env]
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    ports: ["${SIGNAL_PORT}:8010"]
    networks: [inner]
    volumes:
      - type: bind
        source: ${HOST_FOLDER}/${SUBFOLDER}/signal-cli
        target: /signal-cli
        bind:
          create_host_path: false
    command: ["sh", "-c", "echo relay > /signal-cli/started && exec httpd -f -p 8010 -h /signal-cli"]
networks:
  inner: {}
"""
SIGNAL_ENV = ("WEB_PORT=${TIN_PORT_WEB}\nSIGNAL_PORT=${TIN_PORT_1}\nHOST_FOLDER=${TIN_DATA_DIR}\n"
              "SUBFOLDER=signal\n")
BUSYBOX_META = "image: tinsnip/busybox:1.35\nimage_archive: /opt/tinsnip/images/busybox.tar\n"


def small(port="${TIN_PORT_3}:8080", volume="${TIN_DATA_DIR}:/data", user=True):
    """A one-container busybox service; each argument can be made wrong."""
    return ("services:\n  app:\n    image: tinsnip/busybox:1.35\n    init: true\n"
            + ('    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"\n' if user else "")
            + f'    ports: ["{port}"]\n    volumes: ["{volume}"]\n'
            + '    command: ["httpd", "-f", "-p", "8080", "-h", "/data"]\n')


# Each bad folder: (compose file, service.env, what the refusal says)
BAD = {
    "bad-empty": (small(port="${APP_PORT}:8080"), "APP_PORT=\n",
                  ["${APP_PORT}: is empty in the deploy environment", "set it in the service's "
                   "service.env"]),
    "bad-port": (small(port="8080:8080"), "",
                 ["services.app.ports: host port 8080 is outside webapps-prod's ten "
                  "(14000..14009)", "publish \"${TIN_PORT_N}:8080\""]),
    "bad-bind": (small(volume="/etc:/data"), "",
                 ["services.app.volumes: bind mount from /etc, outside /mnt/webapps-prod and "
                  "/home/webapps-prod", "bind from ${TIN_DATA_DIR}"]),
}


def folder(root: Path, name: str, compose: str, env: str = "", meta: str = BUSYBOX_META):
    d = root / name
    d.mkdir(parents=True)
    (d / "docker-compose.yml").write_text(compose)
    (d / "service.env").write_text(env)
    (d / "service.yaml").write_text(meta)
    return d


def docker(lab, args):
    return lab.run(HOST, f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock "
                         f"docker {args}", warn=True)


def containers(lab, project):
    return docker(lab, f"ps -aq --filter label=com.docker.compose.project={project}").stdout.split()


def out(p):
    """Everything a run printed (the recap on stdout, errors on stderr)."""
    return p.stdout + p.stderr


def changed(p):
    return sum(s["changed"] for s in p.summaries.values())


def import_base_image(lab):
    """The Debian+python3 base image, made at test time from the lab's own cached tarball."""
    conn = lab.connection(HOST)
    conn.put(str(pybase.tarball()), "/tmp/pybase.tar.gz")
    docker(lab, "image rm -f tinsnip-lab/python:bookworm")
    lab.run(HOST, "chmod 644 /tmp/pybase.tar.gz")
    assert docker(lab, f"import /tmp/pybase.tar.gz {pybase.IMAGE}").ok
    lab.run(HOST, "rm -f /tmp/pybase.tar.gz")


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    """An inventory and service folders outside the repository; webapps prod set up."""
    root = tmp_path_factory.mktemp("homelab")
    if not (EXAMPLE / "vendor" / "uv").is_file():
        subprocess.run([str(EXAMPLE / "vendor.sh")], check=True,
                       env={**os.environ, "PYTHON": sys.executable})
    shutil.copytree(EXAMPLE, root / "src" / "pyhello", ignore=shutil.ignore_patterns("__pycache__"))
    with open(root / "src" / "pyhello" / "service.env", "a") as f:
        f.write(f"PYHELLO_BASE_IMAGE={pybase.IMAGE}\n")
    folder(root / "src", "signal", SIGNAL, SIGNAL_ENV, BUSYBOX_META + "ports: [web, signal]\n")
    for name, (compose, env, _) in BAD.items():
        folder(root / "src", name, compose, env)
    folder(root / "src", "nouser", small(user=False))
    services = {"signal": {"path": "src/signal", "ports": {"web": 0, "signal": 1}},
                "pyhello": {"path": "src/pyhello", "ports": {"web": 2}, "forward": {80: "web"}},
                "nouser": {"path": str(root / "src" / "nouser"), "ports": {"http": 3}}}
    services.update({name: {"path": f"src/{name}", "ports": {}} for name in BAD})
    inventory = {
        "sheets": {"dynamicalsystem": {"nas": "ds412plus", "volume": "/volume1"}},
        "nas": {"ds412plus": {"host": "ds412plus"}},
        "machines": {"webapps": {"sheet": "dynamicalsystem", "host": HOST,
                                 "environments": ["prod"], "number": 40,
                                 "services": services}},
    }
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    cli = Cli(root / "inventory.yaml")
    cli.inv("nas.setup", *WP)
    cli.inv("machine.setup", *WP)
    import_base_image(lab)
    return cli, root


def test_a_foreign_compose_file_deploys_by_mapping_its_variables(lab, site):
    cli, _ = site
    refused = cli.inv("service.deploy", *WP, "--service", "signal", check=False)
    assert refused.returncode == 1
    source = "/home/webapps-prod/.local/share/dynamicalsystem/@webapps/signal/signal-cli"
    assert f"bind source {source} does not exist and bind.create_host_path is false" in out(refused)
    assert containers(lab, "signal") == []
    lab.run(HOST, f"sudo -u {USER} mkdir -p /mnt/webapps-prod/data/signal/signal-cli")
    first = cli.inv("service.deploy", *WP, "--service", "signal")
    assert changed(first) >= 1
    assert http(lab, HOST, 14000) == "signal-web\n"
    assert http(lab, HOST, 14001, "/started") == "relay\n"  # written through the bind mount
    assert lab.run("ds412plus", f"cat {NAS_DIR}/data/signal/signal-cli/started").stdout == "relay\n"
    assert sorted(docker(lab, "ps --format '{{.Names}}'").stdout.split()) == \
        ["signal-relay-1", "signal-web-1"]  # the profile's service is not started
    again = cli.inv("service.deploy", *WP, "--service", "signal")
    assert changed(again) == 0, again.stdout


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_preflight_refuses_and_starts_nothing(lab, site, name):
    cli, _ = site
    p = cli.inv("service.deploy", *WP, "--service", name, check=False)
    assert p.returncode == 1, p.stdout
    assert "the preflight refused the deploy, nothing was started" in out(p)
    for text in BAD[name][2]:
        assert text in out(p), p.stdout
    assert containers(lab, name) == []
    check = cli.inv("service.check", *WP, "--service", name, check=False)
    assert check.returncode == 1 and BAD[name][2][0] in out(check)


def test_a_service_without_user_is_warned_in_the_recap(lab, site):
    cli, _ = site
    p = cli.inv("service.deploy", *WP, "--service", "nouser")
    assert "warning      service nouser: services.app.user: has no user:" in out(p)
    recap = [line for line in p.stdout.splitlines() if line.startswith(f"{HOST}: ok=")]
    assert len(recap) == 1 and recap[0].endswith("warnings=1"), p.stdout
    cli.inv("service.remove", *WP, "--service", "nouser")


def test_the_uv_example_builds_on_the_machine_and_answers(lab, site):
    cli, root = site
    first = cli.inv("service.deploy", *WP, "--service", "pyhello")
    assert "service.up           changed" in out(first)
    answer = http(lab, HOST, 14002)
    assert answer.startswith("pyhello from webapps-prod uid 14000 visits 1 greeting hello"), answer
    # the venv was built by root and is read-only for the service's UID
    ro = docker(lab, "exec pyhello-pyhello-1 sh -c 'touch /app/.venv/probe'")
    assert not ro.ok and "Permission denied" in ro.stderr
    again = cli.inv("service.deploy", *WP, "--service", "pyhello")
    assert changed(again) == 0, again.stdout
    # one file of the context changes: rebuilt and restarted
    env = root / "src" / "pyhello" / "service.env"
    app = root / "src" / "pyhello" / "pyhello" / "app.py"
    app.write_text(app.read_text().replace('f"visits {visits} greeting', 'f"visits {visits} hi'))
    third = cli.inv("service.deploy", *WP, "--service", "pyhello")
    assert "service.context      changed" in out(third) and "service.up           changed" in out(third)
    assert "visits 2 hi hello" in http(lab, HOST, 14002)
    assert env.is_file()


def test_a_forwarded_standard_port_reaches_the_service(lab, site):
    cli, _ = site
    # the inventory's forward: {80: web} came with the deploy; a client on another host uses 80
    page = lab.run("homelab1", f"curl -sS --max-time 10 http://{lab.ip(HOST)}:80/").stdout
    assert page.startswith("pyhello from webapps-prod"), page
    local = lab.run(HOST, "curl -sS --max-time 10 http://127.0.0.1:80/").stdout
    assert local.startswith("pyhello from webapps-prod"), local  # a client on the host itself
    # the host's own connections to port 80 elsewhere are not taken (nothing listens there)
    assert not lab.run(HOST, f"curl -sS --max-time 5 http://{lab.ip('homelab1')}:80/",
                       warn=True).ok
    second = cli.inv("service.forward", *WP, "--port", "80", "--to", "web", "--service", "signal",
                     check=False)
    assert second.returncode == 1
    assert "port 80 is already forwarded to 14002 for webapps-prod:pyhello" in out(second)
    add = cli.inv("service.forward", *WP, "--port", "8081", "--to", "signal")
    assert changed(add) == 1
    assert changed(cli.inv("service.forward", *WP, "--port", "8081", "--to", "signal")) == 0
    assert lab.run("homelab1", f"curl -sS --max-time 10 http://{lab.ip(HOST)}:8081/started").stdout \
        == "relay\n"
    status = out(cli.inv("machine.status", *WP, check=False))
    assert "80 -> 14002 (webapps-prod:pyhello), 8081 -> 14001 (webapps-prod:signal)" in status
    dry = cli.inv("service.forward", *WP, "--port", "8081", "--to", "signal", "--remove", "--dry")
    assert "would change" in out(dry)
    gone = cli.inv("service.forward", *WP, "--port", "8081", "--to", "signal", "--remove")
    assert changed(gone) == 1
    assert changed(cli.inv("service.forward", *WP, "--port", "8081", "--to", "signal",
                           "--remove")) == 0
    assert "8081" not in lab.run(HOST, "iptables -t nat -S").stdout


def test_logs_are_the_compose_logs(lab, site):
    cli, _ = site
    p = cli.inv("service.logs", *WP, "--service", "pyhello", "--tail", "20")
    assert "pyhello-1  |" in out(p) and "Listening at: http://0.0.0.0:8000" in out(p)


def test_service_remove_keeps_nas_data(lab, site):
    cli, _ = site
    visits = lab.run("ds412plus", f"cat {NAS_DIR}/data/pyhello/visits").stdout
    dry = cli.inv("service.remove", *WP, "--service", "pyhello", "--dry")
    assert "would change" in out(dry) and containers(lab, "pyhello")
    p = cli.inv("service.remove", *WP, "--service", "pyhello")
    assert changed(p) == 2
    assert containers(lab, "pyhello") == []
    assert not lab.run(HOST, "test -e /mnt/webapps-prod/service/pyhello", warn=True).ok
    assert "tinsnip-forward 80 " not in lab.run(HOST, "iptables -t nat -S").stdout
    assert lab.run("ds412plus", f"cat {NAS_DIR}/data/pyhello/visits").stdout == visits
    assert changed(cli.inv("service.remove", *WP, "--service", "pyhello")) == 0


def test_teardown_keeps_nas_data_and_a_new_setup_finds_it(lab, site):
    cli, _ = site
    cli.inv("service.forward", *WP, "--port", "8082", "--to", "web", "--service", "signal")
    dry = cli.inv("machine.teardown", *WP, "--dry")
    assert lab.run(HOST, f"id {USER}", warn=True).ok and "would change" in out(dry)
    p = cli.inv("machine.teardown", *WP)
    assert changed(p) == 5, p.stdout
    assert not lab.run(HOST, f"id {USER}", warn=True).ok
    assert "webapps-prod" not in lab.run(HOST, "cat /etc/fstab /proc/mounts /etc/subuid").stdout
    assert "tinsnip-forward" not in lab.run(HOST, "iptables -t nat -S").stdout
    assert not lab.run(HOST, "test -e /mnt/webapps-prod || test -e /home/webapps-prod",
                       warn=True).ok
    assert lab.run(HOST, f"pgrep -u {UID}", warn=True).stdout == ""
    assert changed(cli.inv("machine.teardown", *WP)) == 0
    visits = int(lab.run("ds412plus", f"cat {NAS_DIR}/data/pyhello/visits").stdout)
    assert visits >= 2
    cli.inv("machine.setup", *WP)
    import_base_image(lab)
    cli.inv("service.deploy", *WP, "--service", "pyhello")
    assert f"visits {visits + 1} " in http(lab, HOST, 14002)


def test_nas_remove_needs_purge(lab, site):
    cli, _ = site
    cli.inv("machine.teardown", *WP)
    refused = cli.inv("nas.remove", *WP, check=False)
    assert refused.returncode == 2 and "--purge" in out(refused)
    assert lab.run("ds412plus", f"test -d {NAS_DIR}", warn=True).ok
    dry = cli.inv("nas.remove", *WP, "--purge", "--dry")
    assert "would change" in out(dry) and lab.run("ds412plus", f"test -d {NAS_DIR}", warn=True).ok
    p = cli.inv("nas.remove", *WP, "--purge")
    assert changed(p) == 1
    assert not lab.run("ds412plus", f"test -e {NAS_DIR}", warn=True).ok
    assert NAS_DIR not in lab.read("ds412plus", "/etc/exports")
    assert changed(cli.inv("nas.remove", *WP, "--purge")) == 0
