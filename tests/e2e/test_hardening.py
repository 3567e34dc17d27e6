"""Input and output hardening over real SSH on the lab: a service folder runs nothing and is read
through nothing on the operator's machine (a template escaping Jinja2, a link to /etc/shadow, a
FIFO), forwards stay within the environment and away from SSH, and a secret used by a compose
template is masked in --dry, -v, --json and the recap file (0600).

The tests share vault prod on homelab2 (machine number 45, ports 14500..14509; vault test,
14510..14519, is in the inventory only), set up here and torn down at the end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tinsnip_lab import registry
from .conftest import ROOT, Cli

GP = ("--machine", "vault", "--env", "prod")
HOST, USER, UID = "homelab2", "vault-prod", 14500
TOKEN, OTHER = "tok-e2e-S3cr3t-5d1f", "other-S3cr3t-9a7c"
BUSYBOX = "image: tinsnip/busybox:1.35\nimage_archive: /opt/tinsnip/images/busybox.tar\n"
SSTI = "{{ cycler.__init__.__globals__.os.system('id > PROOF_PATH') }}"
SECRET_COMPOSE = """\
services:
  app:
    image: tinsnip/busybox:1.35
    init: true
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    environment:
      TOKEN: "{{ secrets.TOKEN }}"
    ports: ["${TIN_PORT_2}:8080"]
    command: ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
"""
# compose refuses the port and quotes it in its message
BAD_PORT_COMPOSE = SECRET_COMPOSE.replace('["${TIN_PORT_2}:8080"]', '["{{ secrets.TOKEN }}:8080"]')


def folder(root: Path, name: str, files: dict) -> Path:
    d = root / "src" / name
    d.mkdir(parents=True)
    for file, text in files.items():
        (d / file).write_text(text)
    return d


def shadow_lines():
    """Lines of the operator's /etc/shadow long enough to recognise (each must never show)."""
    return [line for line in Path("/etc/shadow").read_text().splitlines() if len(line) > 12]


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    proof = root / "proof"
    folder(root, "ssti", {"docker-compose.yml.j2": "services: {}\n# "
                          + SSTI.replace("PROOF_PATH", str(proof)) + "\n",
                          "service.env.j2": SSTI.replace("PROOF_PATH", "~/proof") + "\n"})
    link = folder(root, "shadowlink", {"docker-compose.yml": "services: {}\n"})
    os.symlink("/etc/shadow", link / "service.env")
    fifo = folder(root, "fifo", {"docker-compose.yml": "services: {}\n"})
    os.mkfifo(fifo / "service.env")
    folder(root, "secretapp", {"docker-compose.yml.j2": SECRET_COMPOSE,
                               "service.yaml": BUSYBOX + "secrets: [TOKEN]\n"})
    folder(root, "secretbad", {"docker-compose.yml.j2": BAD_PORT_COMPOSE,
                               "service.yaml": BUSYBOX + "secrets: [TOKEN]\n"})
    services = {"hello": {"http": 0}}
    services.update({n: {"path": f"src/{n}", "ports": {}}
                     for n in ("ssti", "shadowlink", "fifo", "secretapp", "secretbad")})
    inventory = {
        "sheets": {"dynamicalsystem": {"nas": "ds412plus", "volume": "/volume1",
                                       "docker": registry.INVENTORY_DOCKER}},
        "nas": {"ds412plus": {"host": "ds412plus"}},
        "machines": {"vault": {"sheet": "dynamicalsystem", "host": HOST, "number": 45,
                               "environments": ["prod", "test"], "services": services}},
    }
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (root / "secrets").mkdir()
    (root / "secrets" / "vault-prod.env").write_text(f"TOKEN={TOKEN}\nOTHER='{OTHER}'\n")
    (root / "secrets" / "vault-prod.env").chmod(0o600)
    cli = Cli(root / "inventory.yaml")
    cli.inv("nas.setup", *GP)
    cli.inv("machine.setup", *GP)
    cli.inv("service.deploy", *GP, "--service", "hello")
    yield cli, root, proof
    cli.inv("machine.teardown", *GP)
    cli.inv("nas.remove", *GP, "--purge")


def run(cli: Cli, *args, recap: Path | None = None, timeout=300):
    """``inv ARGS`` with its recap file at ``recap``; everything it printed, and the process."""
    env = cli.env({"INVOKE_TINSNIP_RECAP_FILE": str(recap)} if recap else {})
    p = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    return p, p.stdout + p.stderr + (recap.read_text() if recap and recap.exists() else "")


@pytest.mark.parametrize("flags", [(), ("--dry",), ("--dry", "-v", "--json")])
def test_a_template_escaping_the_sandbox_is_refused_and_runs_nothing(lab, site, flags):
    cli, root, proof = site
    p, text = run(cli, "service.deploy", *GP, "--service", "ssti", *flags,
                  recap=root / "recap-ssti.json")
    assert p.returncode == 2, text
    assert "refused by the sandbox: access to attribute '__init__'" in text
    assert not proof.exists() and not (Path.home() / "proof").exists()
    assert not lab.run(HOST, "test -e /mnt/vault-prod/service/ssti", warn=True).ok


@pytest.mark.parametrize("flags", [(), ("--dry", "-v"), ("--json",)])
def test_a_link_to_etc_shadow_is_refused_and_nothing_is_read_through_it(lab, site, flags):
    cli, root, _ = site
    p, text = run(cli, "service.deploy", *GP, "--service", "shadowlink", *flags,
                  recap=root / "recap-link.json")
    assert p.returncode == 2, text
    assert f"{root}/src/shadowlink/service.env is a link" in text
    assert not any(line in text for line in shadow_lines())
    assert not lab.run(HOST, "test -e /mnt/vault-prod/service/shadowlink", warn=True).ok


def test_a_compose_file_linked_to_etc_shadow_is_refused_when_the_inventory_loads(site, tmp_path):
    cli, root, _ = site
    d = folder(tmp_path, "app", {})
    os.symlink("/etc/shadow", d / "docker-compose.yml")
    data = yaml.safe_load((root / "inventory.yaml").read_text())
    data["machines"]["vault"]["services"] = {"app": {"path": str(d), "ports": {}}}
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(data))
    p, text = run(Cli(tmp_path / "inventory.yaml"), "service.deploy", *GP, "--service", "app",
                  "--dry", recap=tmp_path / "recap.json")
    assert p.returncode == 2 and f"{d}/docker-compose.yml is a link" in text, text
    assert not any(line in text for line in shadow_lines())


def test_a_fifo_is_refused_without_hanging(lab, site):
    cli, root, _ = site
    for flags in ((), ("--dry",)):
        p, text = run(cli, "service.deploy", *GP, "--service", "fifo", *flags, timeout=120)
        assert p.returncode == 2 and f"{root}/src/fifo/service.env is a FIFO" in text, text


def test_a_forward_to_another_environment_s_port_is_refused_before_any_host(site):
    cli, root, _ = site
    p, text = run(cli, "service.forward", *GP, "--service", "hello", "--port", "14510",
                  "--to", "0", recap=root / "recap-fwd.json")
    assert p.returncode == 2 and "--port 14510 of homelab2 is vault-test's port TIN_PORT_0" \
        in text, text
    assert json.loads((root / "recap-fwd.json").read_text())["hosts"] == {}  # nothing contacted


def test_a_forward_of_the_ssh_port_is_refused(lab, site):
    cli, _, _ = site
    p, text = run(cli, "service.forward", *GP, "--service", "hello", "--port", "22", "--to", "0")
    assert p.returncode == 2 and "the SSH port tinsnip reaches homelab2 on" in text, text
    # a port sshd listens on besides the one tinsnip uses: refused on the host itself
    lab.run(HOST, "/usr/sbin/sshd -p 2022 -o PidFile=/run/sshd-2022.pid")
    try:
        p, text = run(cli, "service.forward", *GP, "--service", "hello", "--port", "2022",
                      "--to", "0")
        assert p.returncode == 1 and "the host's sshd listens on port 2022" in text, text
        assert "2022" not in lab.run(HOST, "iptables -t nat -S").stdout
    finally:
        lab.run(HOST, "kill $(cat /run/sshd-2022.pid)", warn=True)


def test_a_forward_to_the_environment_s_own_port_is_made(lab, site):
    cli, _, _ = site
    p, text = run(cli, "service.forward", *GP, "--service", "hello", "--port", "8090", "--to", "0")
    assert p.returncode == 0, text
    assert "tinsnip-forward 8090 vault-prod:hello" in lab.run(HOST, "iptables -t nat -S").stdout
    page = lab.run("homelab1", f"curl -sS --max-time 10 http://{lab.ip(HOST)}:8090/").stdout
    assert page, "the forward answers from the service"
    p, text = run(cli, "service.forward", *GP, "--service", "hello", "--port", "8090", "--to", "0",
                  "--remove")
    assert p.returncode == 0 and "8090" not in lab.run(HOST, "iptables -t nat -S").stdout


def _no_secret(text: str):
    assert TOKEN not in text and OTHER not in text and "S3cr3t" not in text


def test_a_secret_used_by_a_compose_template_is_masked_everywhere(lab, site):
    cli, root, _ = site
    recap = root / "recap-secret.json"
    p, text = run(cli, "service.deploy", *GP, "--service", "secretapp", "--dry", recap=recap)
    assert p.returncode == 0, text
    assert 'TOKEN: "***"' in p.stdout  # the compose file's diff, the secret masked
    _no_secret(text)
    assert recap.stat().st_mode & 0o777 == 0o600
    p, text = run(cli, "service.deploy", *GP, "--service", "secretapp", "-v", recap=recap)
    assert p.returncode == 0, text
    assert 'TOKEN: "***"' in text and "TOKEN=***" in text  # compose file and .env diffs
    _no_secret(text)
    p, text = run(cli, "service.deploy", *GP, "--service", "secretapp", "--json", "-v",
                  recap=recap)
    assert p.returncode == 0 and json.loads(p.stdout)["exit_code"] == 0, text
    _no_secret(text)
    assert recap.stat().st_mode & 0o777 == 0o600
    # the container does have the value
    got = lab.run(HOST, f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock "
                        "docker exec secretapp-app-1 sh -c 'echo \"$TOKEN\"'").stdout.strip()
    assert got == TOKEN


def test_compose_s_message_quoting_a_secret_is_masked(lab, site):
    cli, root, _ = site
    recap = root / "recap-bad.json"
    p, text = run(cli, "service.deploy", *GP, "--service", "secretbad", "-v", recap=recap)
    assert p.returncode == 1 and "docker compose config failed" in text, text
    assert "***" in text
    _no_secret(text)


def test_the_recap_file_replaces_a_planted_link_and_is_private(site, tmp_path):
    cli, root, _ = site
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    recap = tmp_path / "recap.json"
    os.symlink(victim, recap)
    p, text = run(cli, "service.forward", *GP, "--service", "hello", "--port", "14510", "--to",
                  "0", recap=recap)
    assert p.returncode == 2 and victim.read_text() == "keep\n"
    assert not recap.is_symlink() and recap.stat().st_mode & 0o777 == 0o600
