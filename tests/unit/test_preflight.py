"""The preflight: the real `docker compose config` in the seed's environment, then the rules."""
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.ops import gate
from tinsnip_tasks.plans import preflight
from tinsnip_tasks.plans.machine import home, machine_env_text

COMPOSE_BIN = Path("/var/cache/tinsnip-lab/docker-compose-2.40.3")
SMEP = make_smep("dynamicalsystem", "gazette", "prod", 1)
HOME = home(SMEP)

# A compose file written for another deployment (the typical one): its own variable
# names, two services, a private network, a profile, a bind mount that must exist.
SIGNAL = """\
services:
  web:
    image: busybox
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    ports: ["${WEB_PORT}:8080"]
    networks: [inner]
  signal:
    image: busybox
    profiles: [signal]
    ports: ["${SIGNAL_PORT}:8010"]
  relay:
    image: busybox
    ports: ["${SIGNAL_PORT}:8010"]
    networks: [inner]
    volumes:
      - type: bind
        source: ${HOST_FOLDER}/${SUBFOLDER}/signal-cli
        target: /home/.local/share/signal-cli
        bind:
          create_host_path: false
      - ${LOGS:-/home/gazette-prod/logs}:/logs
networks:
  inner: {}
"""
GOOD_ENV = "WEB_PORT=${TIN_PORT_0}\nSIGNAL_PORT=${TIN_PORT_1}\nHOST_FOLDER=${TIN_DATA_DIR}\n" \
           "SUBFOLDER=signal\n"


def compose_config(tmp_path, compose, env):
    """Run the preflight script body with the real compose binary, the way the host does."""
    if not COMPOSE_BIN.is_file() or shutil.which("docker") is None:
        pytest.skip("needs the docker CLI and the lab's compose binary")
    plugins = tmp_path / "docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    os.symlink(COMPOSE_BIN, plugins / "docker-compose")
    mount = tmp_path / "mnt"
    sdir = mount / "service" / "signal"
    (mount / ".machine").mkdir(parents=True)
    sdir.mkdir(parents=True)
    (mount / ".machine" / "machine.env").write_text(machine_env_text(SMEP))
    (sdir / ".env").write_text(env)
    (sdir / "docker-compose.yml").write_text(compose)
    with pytest.MonkeyPatch.context() as mp:  # the digests of both files, as tinsnip records them
        mp.setattr(gate, "GATE_ROOT", str(tmp_path / "gate"))
        sums = Path(gate.sums_file(str(mount)))
        sums.parent.mkdir(parents=True)
        sums.write_text("".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f}\n"
                                for f in (mount / ".machine" / "machine.env", sdir / ".env")))
        body = preflight.body(str(mount), str(sdir))
    out = subprocess.run(["bash", "-c", body], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "DOCKER_CONFIG": str(tmp_path / "docker")})
    return preflight.parse(out.stdout)


def findings(facts, compose=SIGNAL, missing=frozenset()):
    return preflight.evaluate("signal", compose, facts, SMEP, HOME, set(missing))


def test_a_foreign_compose_file_passes_with_its_variables_mapped(tmp_path):
    facts = compose_config(tmp_path, SIGNAL, GOOD_ENV)
    assert facts["rc"] == 0
    assert "signal" not in facts["config"]["services"]  # profile not active
    out = findings(facts)
    assert [f.level for f in out] == ["warning"]
    assert out[0].key == "services.relay.user"
    source = f"{HOME}/.local/share/dynamicalsystem/@gazette/signal/signal-cli"
    assert preflight.bind_paths_to_check(facts, SMEP, HOME) == [source]
    # the bind source must exist: missing on the host is an error naming the fix
    missing = findings(facts, missing={source})
    assert [str(f) for f in missing if f.level == "error"] == [
        f"service signal: services.relay.volumes: bind source {source} does not exist and "
        f"bind.create_host_path is false; fix: create {source} (as gazette-prod) before the "
        "deploy, or set create_host_path: true"]


def test_empty_interpolation_is_refused_naming_the_variable(tmp_path):
    facts = compose_config(tmp_path, SIGNAL, GOOD_ENV.replace("SUBFOLDER=signal\n", "SUBFOLDER=\n")
                           .replace("SIGNAL_PORT=${TIN_PORT_1}\n", ""))
    errors = [f for f in findings(facts) if f.level == "error"]
    assert [f.key for f in errors][:2] == ["${SIGNAL_PORT}", "${SUBFOLDER}"]
    assert "service.env" in errors[0].fix
    # ${LOGS:-./logs} has a default: never an error
    assert "${LOGS}" not in [f.key for f in errors]


def test_a_host_port_outside_the_ten_is_refused(tmp_path):
    facts = compose_config(tmp_path, SIGNAL, GOOD_ENV.replace("${TIN_PORT_0}", "8080"))
    errors = [f for f in findings(facts) if f.level == "error"]
    assert [(f.key, f.problem) for f in errors] == [
        ("services.web.ports", "host port 8080 is outside gazette-prod's ten (10100..10109)")]


def test_a_random_host_port_is_refused(tmp_path):
    compose = SIGNAL.replace('["${WEB_PORT}:8080"]', '["8080"]')
    errors = [f for f in findings(compose_config(tmp_path, compose, GOOD_ENV), compose)
              if f.level == "error"]
    assert [f.problem for f in errors] == ["container port 8080 is published on a random host port"]


def test_a_bind_mount_from_outside_is_refused(tmp_path):
    facts = compose_config(tmp_path, SIGNAL, GOOD_ENV.replace("${TIN_DATA_DIR}", "/etc"))
    errors = [f for f in findings(facts) if f.level == "error"]
    assert [f.problem for f in errors] == [
        "bind mount from /etc/signal/signal-cli, outside /mnt/gazette-prod and /home/gazette-prod"]
    assert preflight.bind_paths_to_check(facts, SMEP, HOME) == []


def test_a_broken_compose_file_is_refused_with_compose_s_message(tmp_path):
    compose = "services:\n  web:\n    image: busybox\n    ports: 12\n"
    facts = compose_config(tmp_path, compose, "")
    errors = findings(facts, compose)
    assert facts["rc"] != 0
    assert errors[0].key == "docker-compose.yml" and "failed" in errors[0].problem


def test_references_skip_escapes_comments_and_defaults():
    text = "# ${IN_COMMENT}\nx: $$NOT ${A} $B ${C:-d} ${D-d} ${E:?need}\n"
    assert preflight.references(text) == {"A": True, "B": True, "C": False, "D": False,
                                          "E": False}


def test_exists_script_quotes_each_path():
    assert preflight.exists_script("gazette-prod", ["/mnt/a b", "/x'y"]) == (
        "sudo -u gazette-prod sh -c '[ -e '\"'\"'/mnt/a b'\"'\"' ] || echo '\"'\"'/mnt/a b'\"'\"'; "
        "[ -e '\"'\"'/x'\"'\"'\"'\"'\"'\"'\"'\"'y'\"'\"' ] || echo '\"'\"'/x'\"'\"'\"'\"'\"'\"'\"'\"'y'\"'\"'; true'")
