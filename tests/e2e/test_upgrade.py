"""Registry mirrors and upgrades over real SSH on the lab.

The catalog's hello names ``busybox:1.36``; the lab's registry (Debian's docker-registry on
the NAS host) serves it, and the machine users' daemons reach it only through the inventory's
``docker: registry_mirrors`` setting (the lab has no internet and no image archive is used).
A new image pushed under the same tag is an upgrade: ``service.deploy --pull`` starts it, and
nothing changes on the run after. The tests run in file order and share one inventory.
"""
import json
import re

import pytest

import tinsnip_lab as lab_api
from tinsnip_lab import registry, rootfs
from .conftest import Cli, http

UP = ("--machine", "upgrade", "--env", "prod")
USER, UID, HOST, PORT = "upgrade-prod", 12000, "homelab1", 12000
SD = ("--machine", "upsd", "--env", "prod")
GATE, GATE_USER, GATE_UID = ("--machine", "upgate", "--env", "prod"), "upgate-prod", 12200
SD_USER, SD_UID, SD_HOST = "upsd-prod", 12100, "homelab3"
MIRROR, INSECURE = registry.INVENTORY_DOCKER["registry_mirrors"][0], \
    registry.INVENTORY_DOCKER["insecure_registries"][0]

INVENTORY = f"""\
sheets:
  upsheet:
    nas: ds412plus
    number: 1
    docker:
      registry_mirrors: [{MIRROR}]
      insecure_registries: [{INSECURE}]
nas:
  ds412plus: {{host: ds412plus}}
machines:
  upgrade:
    sheet: upsheet
    host: homelab1
    environments: [prod]
    number: 20
    services:
      hello: {{http: 0}}
      built: {{path: built, ports: {{web: 1}}}}
  upgate:
    sheet: upsheet
    host: homelab1
    environments: [prod]
    number: 22
    services:
      gated: {{path: gated, ports: {{web: 0}}}}
  upsd:
    sheet: upsheet
    host: homelab3
    environments: [prod]
    number: 21
    services:
      hello: {{http: 0}}
"""

BUILT_COMPOSE = """\
services:
  web:
    build: .
    init: true
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    ports: ["${TIN_PORT_1}:8080"]
    command: ["sh", "-c", "mkdir -p /tmp/www && cat /etc/image-variant > /tmp/www/index.html 2>/dev/null; echo built >> /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
"""


# A service of its own folder that runs a pulled image (no build) with a healthcheck: healthy
# only in an image whose variant says "good".
GATED_COMPOSE = """\
services:
  web:
    image: gated:1
    init: true
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    ports: ["${TIN_PORT_0}:8080"]
    command: ["sh", "-c", "mkdir -p /tmp/www && cat /etc/image-variant > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
    healthcheck:
      test: ["CMD", "sh", "-c", "read v < /etc/image-variant; case $$v in good*) exit 0;; esac; exit 1"]
      interval: 1s
      timeout: 2s
      retries: 2
"""


def busybox():
    """The lab's busybox binary (the one its registry images are made of)."""
    state = json.loads((lab_api.lab_dir() / "state.json").read_text())
    return (rootfs.rootfs_dir(state["rootfs"]) / "bin/busybox").read_bytes()


def docker(lab, host, user, uid, args):
    return lab.run(host, f"cd / && sudo -u {user} env DOCKER_HOST=unix:///run/user/{uid}/docker.sock "
                         f"docker {args}", warn=True)


def running_digests(lab, project):
    """The repository digests of the image the project's container runs."""
    d = f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock docker"
    out = lab.run(HOST, f"cd / && for c in $({d} ps -q --filter label=com.docker.compose.project="
                        f"{project}); do {d} image inspect -f '{{{{range .RepoDigests}}}}{{{{.}}}} "
                        f"{{{{end}}}}' $({d} inspect -f '{{{{.Image}}}}' $c); done").stdout
    return out.split()


def lines(p, step):
    """The step's own lines (what it did), not the progress lines of a step still running."""
    return [l for l in (p.stdout + p.stderr).splitlines()
            if f" {step} " in l and not re.search(rf" {re.escape(step)} +(still running|\|)", l)]


def changed(p):
    return sum(s["changed"] for s in p.summaries.values())


@pytest.fixture(scope="module")
def cli(lab, tmp_path_factory):
    root = tmp_path_factory.mktemp("upgrade")
    (root / "built").mkdir()
    (root / "built" / "Dockerfile").write_text("FROM busybox:1.36\nRUN touch /etc/built-here\n")
    (root / "built" / "docker-compose.yml").write_text(BUILT_COMPOSE)
    (root / "gated").mkdir()
    (root / "gated" / "docker-compose.yml").write_text(GATED_COMPOSE)
    (root / "inventory.yaml").write_text(INVENTORY)
    c = Cli(root / "inventory.yaml")
    c.root = root
    # the first image of the tag, as lab.up pushed it
    c.first = registry.push_busybox(busybox())
    return c


def test_daemon_config_is_written_once(cli, lab):
    cli.inv("nas.setup", *UP)
    first = cli.inv("machine.setup", *UP)
    [line] = lines(first, "machine.docker-config")
    assert " changed " in line and "registry-mirrors" in line
    config = lab.run(HOST, f"stat -c '%U %a' /home/{USER}/.config/docker/daemon.json && "
                           f"cat /home/{USER}/.config/docker/daemon.json").stdout
    assert config.startswith(f"{USER} 644\n")
    assert json.loads(config.split("\n", 1)[1]) == {
        "registry-mirrors": [MIRROR], "insecure-registries": [INSECURE]}
    again = cli.inv("machine.setup", *UP)
    [line] = lines(again, "machine.docker-config")
    assert " ok " in line and changed(again) == 0
    info = docker(lab, HOST, USER, UID, "info --format '{{json .RegistryConfig.Mirrors}}'").stdout
    assert json.loads(info) == [MIRROR + "/"]


def test_hello_is_pulled_through_the_mirror(cli, lab):
    p = cli.inv("service.deploy", *UP, "--service", "hello")
    assert "service.image" not in p.stdout  # no archive is loaded: the image comes from the registry
    assert http(lab, HOST, PORT).startswith("hello from upgrade-prod")
    assert running_digests(lab, "hello") == [f"busybox@{cli.first}"]
    stamp = lab.read(HOST, f"/mnt/{USER}/service/hello/.tinsnip-deployed")
    assert f"busybox@{cli.first}" in stamp and "image busybox:1.36 sha256:" in stamp
    status = cli.inv("machine.status", *UP)
    [line] = lines(status, "status.image")
    assert f"hello: busybox:1.36 runs {cli.first}; the registry has no newer one" in line


def test_a_new_image_under_the_same_tag_is_an_upgrade(cli, lab):
    new = registry.push_busybox(busybox(), variant="upgrade-1")
    assert new != cli.first and registry.tag_digest("library/busybox", "1.36") == new
    status = cli.inv("machine.status", *UP)
    [line] = lines(status, "status.image")
    assert f"runs {cli.first}; newer available: {new}" in line
    assert running_digests(lab, "hello") == [f"busybox@{cli.first}"]  # status pulls nothing

    plain = cli.inv("service.deploy", *UP, "--service", "hello")
    assert changed(plain) == 0  # without --pull nothing moves

    dry = cli.inv("service.deploy", *UP, "--service", "hello", "--pull", "--dry")
    assert f"-> {new}" in dry.stdout and running_digests(lab, "hello") == [f"busybox@{cli.first}"]

    pulled = cli.inv("service.deploy", *UP, "--service", "hello", "--pull")
    assert " changed " in lines(pulled, "service.pull")[0]
    assert " changed " in lines(pulled, "service.up")[0]
    assert running_digests(lab, "hello") == [f"busybox@{new}"]
    assert http(lab, HOST, PORT).startswith("hello from upgrade-prod")
    assert f"busybox@{new}" in lab.read(HOST, f"/mnt/{USER}/service/hello/.tinsnip-deployed")

    again = cli.inv("service.deploy", *UP, "--service", "hello", "--pull")
    assert changed(again) == 0 and " ok " in lines(again, "service.pull")[0]
    status = cli.inv("machine.status", *UP)
    [line] = lines(status, "status.image")
    assert f"runs {new}; the registry has no newer one" in line


def test_a_built_service_is_rebuilt_on_a_new_base(cli, lab):
    cli.inv("service.deploy", *UP, "--service", "built")
    assert http(lab, HOST, PORT + 1).endswith("built\n")
    base = registry.push_busybox(busybox(), variant="base-2")
    pulled = cli.inv("service.deploy", *UP, "--service", "built", "--pull")
    assert " changed " in lines(pulled, "service.pull")[0]
    assert " changed " in lines(pulled, "service.up")[0]
    page = http(lab, HOST, PORT + 1)
    assert page == "base-2\nbuilt\n", page  # the new base's file, in a rebuilt image
    again = cli.inv("service.deploy", *UP, "--service", "built", "--pull")
    assert changed(again) == 0
    base_id = docker(lab, HOST, USER, UID, "image inspect -f '{{.Id}}' busybox:1.36").stdout.strip()
    stamp = lab.read(HOST, f"/mnt/{USER}/service/built/.tinsnip-deployed")
    assert f"image busybox:1.36 {base_id}" in stamp  # the base the image was built on
    assert f"busybox@{base}" in docker(lab, HOST, USER, UID,
                                       "image inspect -f '{{.RepoDigests}}' busybox:1.36").stdout


def test_site_up_pull_upgrades_every_selected_service(cli, lab):
    new = registry.push_busybox(busybox(), variant="site-3")
    p = cli.inv("site.up", "--limit", "upgrade:prod", "--pull")
    pulled = [l for l in lines(p, "service.pull") if " changed " in l]
    assert pulled and all(f"-> {new}" in l or "busybox:1.36" in l for l in pulled)
    ups = [l for l in lines(p, "service.up") if " changed " in l]
    assert {("hello" in l, "built" in l) for l in ups} == {(True, False), (False, True)}
    assert running_digests(lab, "hello") == [f"busybox@{new}"]
    assert http(lab, HOST, PORT + 1) == "site-3\nbuilt\n"
    again = cli.inv("site.up", "--limit", "upgrade:prod", "--pull")
    assert changed(again) == 0, again.stdout


def test_a_changed_mirror_restarts_the_systemd_users_daemon(cli, lab):
    cli.inv("nas.setup", *SD)
    cli.inv("machine.setup", *SD)
    cli.inv("service.deploy", *SD, "--service", "hello")
    assert http(lab, SD_HOST, 12100).startswith("hello from upsd-prod")
    before = lab.run(SD_HOST, f"systemctl --user -M {SD_USER}@ show -p MainPID --value "
                              "docker.service").stdout.strip()
    text = (cli.root / "inventory.yaml").read_text()
    (cli.root / "inventory.yaml").write_text(text.replace(
        f"registry_mirrors: [{MIRROR}]",
        f"registry_mirrors: [{MIRROR}, http://{lab_api.NAS_HOST}:5001]"))
    try:
        p = cli.inv("machine.setup", *SD)
        assert " changed " in lines(p, "machine.docker-config")[0]
        assert " changed " in lines(p, "machine.docker")[0]
        after = lab.run(SD_HOST, f"systemctl --user -M {SD_USER}@ show -p MainPID --value "
                                 "docker.service").stdout.strip()
        assert after != before and after != "0"
        mirrors = docker(lab, SD_HOST, SD_USER, SD_UID,
                         "info --format '{{json .RegistryConfig.Mirrors}}'").stdout
        assert len(json.loads(mirrors)) == 2
        # the container's restart policy brings hello back with the daemon
        assert http(lab, SD_HOST, 12100).startswith("hello from upsd-prod")
        again = cli.inv("machine.setup", *SD)
        assert changed(again) == 0
    finally:
        (cli.root / "inventory.yaml").write_text(text)


def test_an_upgrade_that_is_not_healthy_goes_back_to_the_image_before(cli, lab):
    """--pull brings a new image under the same tag and the same files: a new version all the
    same, so the deploy keeps the running one first and the health gate brings it back."""
    good = registry.push_busybox(busybox(), "library/gated", "1", variant="good-1")
    cli.inv("nas.setup", *GATE)
    cli.inv("machine.setup", *GATE)
    cli.inv("service.deploy", *GATE, "--service", "gated")
    assert http(lab, HOST, GATE_UID) == "good-1\n"
    bad = registry.push_busybox(busybox(), "library/gated", "1", variant="bad-2")
    assert bad != good

    p = cli.inv("service.deploy", *GATE, "--service", "gated", "--pull", "--wait", "20",
                "--json", check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    [gen] = [s for s in p.recap["hosts"][HOST]["steps"] if s["step"] == "service.generation"]
    assert gen["status"] == "changed", gen
    assert p.recap["hosts"][HOST]["rolled_back"] == 1
    assert "rolled back to generation" in p.stderr + p.stdout
    assert http(lab, HOST, GATE_UID) == "good-1\n"  # the image before, under its tag again
    d = f"sudo -u {GATE_USER} env DOCKER_HOST=unix:///run/user/{GATE_UID}/docker.sock docker"
    running = lab.run(HOST, f"cd / && {d} image inspect -f '{{{{range .RepoDigests}}}}{{{{.}}}} "
                            f"{{{{end}}}}' $({d} inspect -f '{{{{.Image}}}}' gated-web-1)").stdout
    assert f"gated@{good}" in running.split() and f"gated@{bad}" not in running.split()

    again = cli.inv("service.deploy", *GATE, "--service", "gated")
    assert changed(again) == 0  # the stamp brought back matches what runs
