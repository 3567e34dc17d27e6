"""Registry mirrors in the inventory, the daemon's config, image tracking, pulls, the deploy
stamp's digests and what status says about them: facts in, commands out."""
import json
import subprocess
import textwrap

import pytest

from tinsnip_tasks.core import images as img
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError, InventoryError
from tinsnip_tasks.ops.docker import (ComposeUp, DaemonConfig, ImagesPulled, daemon_json,
                                      images_script, parse_images, parse_stamp)
from tinsnip_tasks.plans import Target, machine, status

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
ID = "sha256:" + "c" * 64
GP = make_smep("dynamicalsystem", "gazette", "prod", 1)

INVENTORY = """\
sheets:
  home:
    nas: nas1
    docker:
      registry_mirrors: [http://10.0.0.5:5000]
      insecure_registries: [10.0.0.5:5000]
nas:
  nas1: {host: nas1}
machines:
  gazette:
    sheet: home
    host: box1
    environments: [prod]
  ledger:
    sheet: home
    host: box1
    environments: [prod]
    docker:
      registry_mirrors: [https://mirror.example.org]
"""


def load(tmp_path, text):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


def test_docker_settings_of_the_sheet_and_a_machines_own(tmp_path):
    inv = load(tmp_path, INVENTORY)
    assert inv.machine_env("gazette", "prod").docker.daemon_config() == {
        "registry-mirrors": ["http://10.0.0.5:5000"], "insecure-registries": ["10.0.0.5:5000"]}
    # the machine's key wins, the sheet's other key stays
    assert inv.machine_env("ledger", "prod").docker.daemon_config() == {
        "registry-mirrors": ["https://mirror.example.org"],
        "insecure-registries": ["10.0.0.5:5000"]}


@pytest.mark.parametrize("key, value, problem", [
    ("registry_mirrors", "[ftp://10.0.0.5]", "not valid"),
    ("registry_mirrors", "[http://10.0.0.5:5000/v2/]", "not valid"),
    ("registry_mirrors", "['http://a;reboot']", "not valid"),
    ("registry_mirrors", "[http://a:70000]", "not valid"),
    ("registry_mirrors", "http://10.0.0.5:5000", "expected a list"),
    ("insecure_registries", "['10.0.0.5:5000 --x']", "not valid"),
    ("insecure_registries", "[http://10.0.0.5:5000]", "not valid"),
    ("insecure_registries", "[a:5000, a:5000]", "listed twice"),
    ("mirrors", "[http://a]", "unknown key 'mirrors'"),
])
def test_bad_docker_settings_are_refused_at_load(tmp_path, key, value, problem):
    text = INVENTORY.replace("      registry_mirrors: [http://10.0.0.5:5000]\n"
                             "      insecure_registries: [10.0.0.5:5000]\n",
                             f"      {key}: {value}\n")
    with pytest.raises(InventoryError) as e:
        load(tmp_path, text)
    assert problem in str(e.value) and "sheets.home.docker" in str(e.value)


def test_machine_setup_writes_the_daemon_config(tmp_path):
    inv = load(tmp_path, INVENTORY)
    smep = make_smep("home", "gazette", "prod", 1)
    [config] = machine.docker_config(Target(inv, smep))
    assert json.loads(config.config) == inv.machine_env("gazette", "prod").docker.daemon_config()
    assert config.file.path == f"/home/{smep.user}/.config/docker/daemon.json"
    assert config.file.owner == smep.uid
    assert machine.SETUP.index(machine.docker_config) < machine.SETUP.index(machine.docker)


def test_daemon_config_is_written_once_and_restarts_a_running_daemon():
    text = daemon_json({"registry-mirrors": ["http://10.0.0.5:5000"]})
    r = DaemonConfig("gazette-prod", 10100, "/home/gazette-prod", text)
    cmds = r.commands(None)
    shown = [str(c) for c in cmds]
    assert "write" in shown[1] and "daemon.json" in shown[1]
    # stopped if it runs, looked at when the change runs: with systemd its unit, else the
    # detached daemon
    assert shown[-1] == ("stop the daemon of gazette-prod if it runs: it starts again with the "
                         "new file")
    assert cmds[-1].text.startswith("if pgrep -u 10100 -x dockerd >/dev/null; then ")
    assert "then systemctl --user -M gazette-prod@ stop docker.service; else " in cmds[-1].text
    assert "pkill -TERM -u 10100 -x dockerd" in cmds[-1].text
    # its fact is the file's, read as the user with the user's other facts
    assert r.fact_as() == r.file.fact_as() and r.fact_as()[0] == 10100
    # the same content: nothing to do
    import hashlib
    same = {"type": "regular file", "uid": 10100, "gid": 10100, "mode": 0o644,
            "sha256": hashlib.sha256(text.encode()).hexdigest(), "now": ""}
    assert r.commands(same) == []
    # no settings and no file: no file is made
    assert DaemonConfig("u", 1, "/home/u").commands(None) == []


def test_the_daemon_is_stopped_for_a_new_daemon_json_only_if_it_runs(tmp_path):
    """The stop command run for real, no daemon of that UID running: nothing is stopped."""
    r = DaemonConfig("someone", 4247, str(tmp_path),
                     daemon_json({"registry-mirrors": ["http://m"]}))
    stop = r.commands(None)[-1].text
    out = subprocess.run(["sh", "-c", stop.replace("pkill", "echo pkill")], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout == ""


def test_daemon_json_is_stable():
    a = daemon_json({"registry-mirrors": ["http://m:5000"], "insecure-registries": ["m:5000"]})
    b = daemon_json({"insecure-registries": ["m:5000"], "registry-mirrors": ["http://m:5000"]})
    assert a == b and a.endswith("\n") and json.loads(a)["insecure-registries"] == ["m:5000"]


@pytest.mark.parametrize("ref, repo", [
    ("busybox:1.36", "busybox"),
    ("docker.io/library/busybox:1.36", "busybox"),
    ("lldap/lldap:stable", "lldap/lldap"),
    ("10.0.0.5:5000/team/app:2", "10.0.0.5:5000/team/app"),
    ("10.0.0.5:5000/app", "10.0.0.5:5000/app"),
    ("busybox@" + OLD, "busybox"),
])
def test_repository_names_as_docker_shows_them(ref, repo):
    assert img.repository(ref) == repo
    assert img.check_ref(ref, "x") == ref


@pytest.mark.parametrize("ref", ["Busybox", "busybox:1.36;id", "$(id)", "a b", "-x", ""])
def test_bad_references_are_refused(ref):
    with pytest.raises(InputError):
        img.check_ref(ref, "docker-compose.yml")


def test_dockerfile_bases_skip_stages_scratch_and_variables():
    text = textwrap.dedent("""\
        ARG BASE=busybox:1.36
        FROM --platform=linux/amd64 python:3.12-slim AS build
        FROM $BASE
        FROM build AS again
        from busybox:1.36
        FROM scratch
        """)
    assert img.dockerfile_bases(text) == ["python:3.12-slim", "busybox:1.36"]


def test_tracked_images_of_pulled_and_built_services(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Containerfile").write_text("FROM busybox:1.36\n")
    compose = textwrap.dedent("""\
        services:
          web: {image: "lldap/lldap:stable"}
          app: {build: {context: app, dockerfile: Containerfile}, image: mine}
          var: {image: "${IMAGE}"}
        """)
    assert img.tracked(compose, tmp_path, "c.yml") == ("lldap/lldap:stable", "busybox:1.36")
    with pytest.raises(InputError, match="services.web.image"):
        img.tracked("services:\n  web: {image: 'a;b'}\n", None, "c.yml")


def test_registry_answers():
    assert img.registry_digest(json.dumps({"Descriptor": {"digest": NEW}})) == (NEW, "")
    assert img.registry_digest('{"message":"manifest unknown"}') == ("", "manifest unknown")
    assert img.registry_digest("curl is not installed on the host")[1].startswith("curl")


def _images_out(local, remote):
    return f"@@ref 0\nlocal {local}\nremote {remote}\n"


@pytest.mark.parametrize("local, remote, pulls", [
    (f"{ID} busybox@{OLD}", json.dumps({"Descriptor": {"digest": OLD}}), False),
    (f"{ID} busybox@{OLD}", json.dumps({"Descriptor": {"digest": NEW}}), True),
    ("", json.dumps({"Descriptor": {"digest": NEW}}), True),
    (f"{ID} busybox@{OLD}", '{"message":"no route to host"}', True),
    (f"{ID} other@{NEW}", json.dumps({"Descriptor": {"digest": NEW}}), True),
], ids=["current", "newer", "missing", "registry-unreachable", "digest-of-another-repo"])
def test_pull_only_what_the_registry_serves_anew(local, remote, pulls):
    r = ImagesPulled("gazette-prod", 10100, ("busybox:1.36",))
    cmds = r.plan(_images_out(local, remote))
    assert bool(cmds) is pulls
    if pulls:
        assert "docker pull -q busybox:1.36" in cmds[0].text
        assert str(cmds[0]).startswith("pull busybox:1.36 as gazette-prod")


def test_the_registry_is_asked_through_the_daemon():
    script = images_script("gazette-prod", 10100, ("busybox:1.36", "busybox@" + OLD), remote=True)
    assert ("--unix-socket /run/user/10100/docker.sock "
            '"http://localhost/distribution/"busybox:1.36"/json"') in script
    assert "distribution/\"busybox@" not in script  # a digest never moves: not asked
    facts = parse_images(_images_out(f"{ID} busybox@{OLD} busybox@{NEW}", "{}"), ("busybox:1.36",))
    assert facts[0]["digests"] == [OLD, NEW] and facts[0]["id"] == ID


STAMP = f"abc\nimage busybox:1.36 {ID}\nservice hello busybox:1.36 {ID} busybox@{OLD}\n"


def test_the_stamp_records_image_digests():
    s = parse_stamp(STAMP)
    assert s["files"] == "abc" and s["images"] == {"busybox:1.36": ID}
    assert s["services"]["hello"] == {"ref": "busybox:1.36", "id": ID, "digests": [f"busybox@{OLD}"]}
    assert parse_stamp("abc\n") == {"files": "abc", "images": {}, "services": {}, "hashes": {}}
    assert parse_stamp("abc\nhash hello 1f2e\n")["hashes"] == {"hello": "1f2e"}


def _up_fact(stamp, image_id):
    return f"hello\n@@stamp\n{stamp}@@ps\nhello running\n@@images\nimage busybox:1.36 {image_id}\n"


def test_a_new_image_starts_the_project_again_and_only_then():
    up = ComposeUp("u", 1, "/m", "/m/service/hello", "hello", "abc", images=("busybox:1.36",))
    assert up.plan(_up_fact(STAMP, ID)) == []
    cmds = up.plan(_up_fact(STAMP, "sha256:" + "d" * 64))
    assert "docker compose up -d" in cmds[0].text and "new image: busybox:1.36" in str(cmds[0])
    assert "image busybox:1.36 $(docker image inspect" in cmds[-1].text
    # a stamp written before digests were recorded: the files decide alone
    assert up.plan(_up_fact("abc\n", ID)) == []
    built = ComposeUp("u", 1, "/m", "/m/service/app", "app", "abc", build=True,
                      images=("busybox:1.36",))
    assert "up -d --build" in built.plan(_up_fact(STAMP, "sha256:" + "d" * 64))[0].text


def test_status_says_which_image_runs_and_whether_a_newer_one_waits():
    out = "\n".join([
        f"@digest hello hello busybox:1.36 {ID} busybox@{OLD}",
        "@registry hello hello " + json.dumps({"Descriptor": {"digest": NEW}}),
        f"@digest app app app-app {ID} ",
        f"@digest web web lldap/lldap:stable {ID} lldap/lldap@{OLD}",
        "@registry web web " + json.dumps({"Descriptor": {"digest": OLD}}),
        f"@digest db db postgres:16 {ID} postgres@{OLD}",
        '@registry db db {"message":"connection refused"}',
    ])
    lines = status.image_lines(status.parse_images(out), GP)
    assert lines[0] == (f"hello: busybox:1.36 runs {OLD}; newer available: {NEW} "
                        "(`tinsnip service.deploy --machine gazette --env prod --service hello --pull`)")
    assert lines[1] == f"app: app-app runs {ID}; built or loaded here, no registry digest"
    assert lines[2].endswith("the registry has no newer one")
    assert lines[3].endswith("the registry could not be asked: connection refused")
    assert 'curl -s --max-time 30 --unix-socket /run/user/10100/docker.sock' in \
        status.images_script(GP)


def test_the_lab_registry_images_are_stable_and_a_variant_is_another_image():
    from tinsnip_lab import images

    a, blobs = images.registry_image(b"busybox binary")
    assert (a, blobs) == images.registry_image(b"busybox binary")
    manifest = json.loads(a)
    assert manifest["mediaType"] == images.MANIFEST_TYPE
    assert {manifest["config"]["digest"], manifest["layers"][0]["digest"]} == set(blobs)
    assert all(images.digest(data) == d for d, data in blobs.items())
    b, _ = images.registry_image(b"busybox binary", variant="2")
    assert images.digest(a) != images.digest(b)


def test_a_bad_image_reference_is_refused_before_any_host(tmp_path):
    from test_cli import run

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: 'busybox:1.36;reboot'\n")
    (tmp_path / "inventory.yaml").write_text(INVENTORY.replace(
        "    environments: [prod]\n    docker:",
        "    environments: [prod]\n    services: {app: {path: app, ports: {}}}\n    docker:"))
    p = run("site.up", "--pull", inventory=tmp_path / "inventory.yaml")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "'busybox:1.36;reboot' is not an image reference" in p.stderr
    assert "box1" not in p.stdout  # no host was contacted
