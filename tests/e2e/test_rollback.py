"""Health-gated deploys and rollback on the lab, over real SSH: a service built from its own
folder (each version its own image, with a healthcheck), a version that never becomes healthy
rolled back automatically, ``service.rollback`` one generation at a time, a first deploy that
never becomes healthy left stopped, and ``--wait``.

The tests run in file order and share one machine-environment (rollouts prod on homelab1).
"""
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from .conftest import Cli, http

DATA = Path(__file__).resolve().parent / "data"
RP = ("--machine", "rollouts", "--env", "prod")
USER, UID, HOST = "rollouts-prod", 14800, "homelab1"
WEB, NEVER = 14800, 14801
SVC = f"/mnt/{USER}/service"
GENS = f"{SVC}/.generations/rollhello"
TOKEN = "tok-4c1d9a7e5b"  # ROLL_TOKEN: the service prints it in its log; tinsnip never may


def docker(lab, args):
    return lab.run(HOST, f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock "
                         f"docker {args}", warn=True)


def out(p):
    return p.stdout + p.stderr


def changed(p):
    return sum(s["changed"] for s in p.summaries.values())


def recap(p):
    return [line for line in p.stdout.splitlines() if line.startswith(f"{HOST}: ok=")][0]


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    """An inventory beside copies of the two service folders; rollouts prod set up."""
    root = tmp_path_factory.mktemp("rollouts")
    for name in ("rollhello", "neverup"):
        shutil.copytree(DATA / name, root / name)
    inventory = {
        "sheets": {"dynamicalsystem": {"nas": "ds412plus", "volume": "/volume1"}},
        "nas": {"ds412plus": {"host": "ds412plus"}},
        "machines": {"rollouts": {
            "sheet": "dynamicalsystem", "host": HOST, "environments": ["prod"], "number": 48,
            "services": {"rollhello": {"path": "rollhello", "ports": {"web": 0}},
                         # so long that only --wait can make its deploy end in time
                         "neverup": {"path": "neverup", "ports": {"web": 1}, "wait": 900}}}},
    }
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (root / "secrets").mkdir(mode=0o700)
    (root / "secrets" / "rollouts-prod.env").write_text(f"ROLL_TOKEN={TOKEN}\n")
    (root / "secrets" / "rollouts-prod.env").chmod(0o600)
    cli = Cli(root / "inventory.yaml")
    cli.inv("nas.setup", *RP)
    cli.inv("machine.setup", *RP)
    return cli, root


def version(root, v, health_path="ok"):
    (root / "rollhello" / "service.env").write_text(f"VERSION={v}\nHEALTH_PATH={health_path}\n")


def deploy(cli, *extra, check=True):
    return cli.inv("service.deploy", *RP, "--service", "rollhello", *extra, check=check)


def gens(lab):
    listing = lab.run(HOST, f"sudo -u {USER} ls -1 {GENS}", warn=True).stdout.split()
    return sorted(int(n) for n in listing if n.isdigit())


def test_a_healthy_version_deploys_and_a_second_run_changes_nothing(lab, site):
    cli, root = site
    version(root, "v1")
    first = deploy(cli)
    assert "service.up           changed" in out(first)
    assert http(lab, HOST, WEB, wait=5) == "v1\n"  # answering when the deploy returns
    assert gens(lab) == []  # a first deploy has nothing to keep
    again = deploy(cli)
    assert changed(again) == 0, again.stdout
    assert "rolled_back" not in recap(again)
    assert again.recap["hosts"][HOST]["rolled_back"] == 0


def test_a_version_that_never_becomes_healthy_is_rolled_back(lab, site):
    cli, root = site
    version(root, "v2", health_path="missing")
    started = time.monotonic()
    p = deploy(cli, check=False)
    took = time.monotonic() - started
    text = out(p)
    assert p.returncode == 1, text
    # the service.yaml's wait: 20
    assert "rollhello was not healthy within 20 s; rolled back to generation 1" in text
    assert "which is healthy" in text
    assert "container rollhello-web-1: running, health unhealthy" in text
    assert "wget: server returned error: HTTP/1.1 404 Not Found" in text  # its health output
    assert "rollhello-web-1: last log lines:" in text and "starting v2 with token ***" in text
    assert TOKEN not in text  # neither the log nor anything else shows the secret
    assert "HEALTH_PATH=" not in text  # nor the .env
    assert recap(p).endswith(" rolled_back=1"), p.stdout
    assert p.recap["rolled_back"] == 1 and p.recap["hosts"][HOST]["rolled_back"] == 1
    assert p.recap["exit_code"] == 1
    assert http(lab, HOST, WEB, wait=5) == "v1\n"  # the old version's own image answers
    env = lab.run(HOST, f"sudo -u {USER} cat {SVC}/rollhello/.env").stdout
    assert "VERSION=v1" in env
    assert gens(lab) == []  # the generation brought back is what runs now
    assert took < 20 + 60 + 60, took  # never longer than the two waits and their commands
    # JSON on stdout names it too
    j = cli.inv("service.deploy", *RP, "--service", "rollhello", "--json", "--wait", "3",
                check=False)
    doc = json.loads(j.stdout)
    assert j.returncode == 1 and doc["rolled_back"] == 1
    assert "not healthy within 3 s" in doc["hosts"][HOST]["error"]
    assert http(lab, HOST, WEB, wait=5) == "v1\n"


def test_generations_are_kept_with_their_images_and_old_ones_removed(lab, site):
    cli, root = site
    for v in ("v3", "v4", "v5", "v6"):
        version(root, v)
        deploy(cli)
        assert http(lab, HOST, WEB, wait=5) == f"{v}\n"
    # v1, v3, v4, v5 were kept in turn; the newest three stay
    assert gens(lab) == [2, 3, 4]
    tags = docker(lab, "images tinsnip-generation/rollhello --format '{{.Tag}}'").stdout.split()
    assert sorted(t.split("-")[0] for t in tags) == ["2", "3", "4"]
    mode = lab.run(HOST, f"sudo -u {USER} stat -c %a {GENS}/4/files/.env").stdout.strip()
    assert mode == "600"
    # neither a prune nor a rebuild of the tag loses an image a generation ran
    docker(lab, "image prune -f")
    images = lab.run(HOST, f"sudo -u {USER} cat {GENS}/4/images").stdout.split()
    assert images[0] == "web" and docker(lab, f"image inspect {images[1]}").ok


def test_rollback_goes_back_one_generation_per_call(lab, site):
    cli, _ = site
    dry = cli.inv("service.rollback", *RP, "--service", "rollhello", "--dry")
    assert "would change" in out(dry) and "back to generation 4" in out(dry)
    assert http(lab, HOST, WEB, wait=5) == "v6\n" and gens(lab) == [2, 3, 4]
    one = cli.inv("service.rollback", *RP, "--service", "rollhello")
    assert "service.rollback     changed" in out(one) and recap(one).endswith(" rolled_back=1")
    assert http(lab, HOST, WEB, wait=5) == "v5\n" and gens(lab) == [2, 3]
    two = cli.inv("service.rollback", *RP, "--service", "rollhello")
    assert "back to generation 3" in out(two)
    assert http(lab, HOST, WEB, wait=5) == "v4\n" and gens(lab) == [2]
    cli.inv("service.rollback", *RP, "--service", "rollhello")
    assert http(lab, HOST, WEB, wait=5) == "v3\n" and gens(lab) == []
    none = cli.inv("service.rollback", *RP, "--service", "rollhello")
    assert "no older generation of rollhello" in out(none)
    assert changed(none) == 0 and "rolled_back" not in recap(none)
    assert http(lab, HOST, WEB, wait=5) == "v3\n"
    # the next deploy brings the inventory's version again, keeping the rolled-back one
    again = deploy(cli)
    assert "service.up           changed" in out(again)
    assert http(lab, HOST, WEB, wait=5) == "v6\n" and gens(lab) == [1]


def test_a_first_deploy_that_never_becomes_healthy_is_left_stopped(lab, site):
    cli, _ = site
    p = cli.inv("service.deploy", *RP, "--service", "neverup", "--wait", "4", check=False)
    text = out(p)
    assert p.returncode == 1, text
    # --wait wins over the inventory's wait: 900
    assert "neverup was not healthy within 4 s; no earlier generation to go back to: " \
           "left stopped" in text
    assert "container neverup-web-1: running, health unhealthy" in text
    assert "rolled_back" not in recap(p) and p.recap["rolled_back"] == 0
    state = docker(lab, "ps -a --filter label=com.docker.compose.project=neverup "
                        "--format '{{.State}}'").stdout.split()
    assert state == ["exited"]
    assert not lab.run(HOST, f"sudo -u {USER} test -e {SVC}/neverup/.tinsnip-deployed",
                       warn=True).ok
    # nothing kept of a version that never ran healthy
    assert not lab.run(HOST, f"sudo -u {USER} test -e {SVC}/.generations/neverup", warn=True).ok


def test_site_up_gates_every_service_with_its_wait(lab, site):
    cli, _ = site
    p = cli.inv("site.up", "--limit", "rollouts", "--wait", "3", check=False)
    text = out(p)
    assert p.returncode == 1, text
    # the stopped neverup is started again, gated with --wait, and stopped again
    assert "neverup was not healthy within 3 s; no earlier generation to go back to" in text
    assert "rolled_back" not in recap(p)
    assert http(lab, HOST, WEB, wait=5) == "v6\n"  # rollhello, unchanged, still answers


def test_bad_wait_is_refused_before_any_host(site):
    cli, _ = site
    p = cli.inv("service.deploy", *RP, "--service", "rollhello", "--wait", "soon", check=False)
    assert p.returncode == 2 and "--wait 'soon' is not a number of seconds" in out(p)


def test_remove_takes_the_generations_and_their_image_tags(lab, site):
    cli, _ = site
    cli.inv("service.remove", *RP, "--service", "rollhello")
    assert not lab.run(HOST, f"sudo -u {USER} test -e {GENS}", warn=True).ok
    assert docker(lab, "images -q tinsnip-generation/rollhello").stdout.strip() == ""
