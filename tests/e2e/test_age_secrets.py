"""An age-encrypted secrets file over real SSH on the lab: encrypted with ``secrets.encrypt``,
decrypted in memory at deploy, its values reach the container byte for byte (read from the
container's own environment), ``secrets.edit`` changes one and the redeploy carries it, and no
plain copy is left on the operator's side (the project folder and the temporary folders are
searched for the values)."""
import os
import secrets as random
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tinsnip_tasks.core import envfile

from .conftest import Cli

ARGS = ("--machine", "keeper", "--env", "prod")
USER, UID, HOST = "keeper-prod", 14700, "homelab1"
TOKEN = random.token_hex(8)  # in every value: a file holding it holds a plain secret
SECRETS = (f"# keeper's secrets\nDB_PASSWORD='s3cr3t {TOKEN} $(id) `x` *'\n"
           f"API_TOKEN=\"tok'{TOKEN} x!\"\nODD_VALUE=ünï😀-{TOKEN}\n")
COMPOSE = """\
services:
  app:
    image: tinsnip/busybox:1.35
    init: true
    env_file: [../../.machine/machine.env, .env]
    user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"
    command: ["sleep", "100000"]
"""
META = ("image: tinsnip/busybox:1.35\nimage_archive: /opt/tinsnip/images/busybox.tar\n"
        "secrets: [DB_PASSWORD, API_TOKEN, ODD_VALUE]\n")


@pytest.fixture(scope="module")
def project(lab, tmp_path_factory):
    """A project folder: inventory, the service's folder, a plain secrets file, an identity."""
    root = tmp_path_factory.mktemp("agesecrets")
    src = root / "src" / "vaultapp"
    src.mkdir(parents=True)
    (src / "docker-compose.yml").write_text(COMPOSE)
    (src / "service.yaml").write_text(META)
    inventory = {
        "sheets": {"dynamicalsystem": {"nas": "ds412plus", "volume": "/volume1"}},
        "nas": {"ds412plus": {"host": "ds412plus"}},
        "machines": {"keeper": {"sheet": "dynamicalsystem", "host": HOST,
                                "environments": ["prod"], "number": 47,
                                "services": {"vaultapp": {"path": "src/vaultapp",
                                                          "ports": {}}}}},
    }
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (root / "secrets").mkdir(mode=0o700)
    plain = root / "secrets" / "keeper-prod.env"
    plain.write_text(SECRETS)
    plain.chmod(0o600)
    key = root / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    key.chmod(0o600)
    cli = Cli(root / "inventory.yaml")
    cli.inv("nas.setup", *ARGS)
    cli.inv("machine.setup", *ARGS)
    return cli, root, key


def container_env(lab):
    """The environment of the service's container, as its main process sees it."""
    run = f"sudo -u {USER} env DOCKER_HOST=unix:///run/user/{UID}/docker.sock docker"
    ids = lab.run(HOST, f"{run} ps -q --filter label=com.docker.compose.project=vaultapp").stdout
    assert len(ids.split()) == 1, ids
    out = lab.connection(HOST).run(f"{run} exec {ids.split()[0]} cat /proc/1/environ",
                                   hide=True, in_stream=False, encoding="utf-8")
    return dict(x.split("=", 1) for x in out.stdout.split("\0") if "=" in x)


def plain_copies(root: Path, token: str) -> list[str]:
    """Files on the operator's side holding ``token``: under the project folder, /dev/shm and
    the temporary folder's tinsnip-secrets-* folders."""
    places = [str(root)] + [p for p in ("/dev/shm",) if os.path.isdir(p)]
    places += [str(p) for p in Path(tempfile.gettempdir()).glob("tinsnip-secrets-*")]
    p = subprocess.run(["grep", "-rlsF", "--binary-files=text", token, *places],
                       capture_output=True, text=True)
    return p.stdout.split()


def test_an_encrypted_secrets_file_reaches_the_container_byte_for_byte(lab, project):
    cli, root, key = project
    plain = root / "secrets" / "keeper-prod.env"
    first = cli.inv("service.deploy", *ARGS, "--service", "vaultapp")  # from the plain file
    assert sum(s["changed"] for s in first.summaries.values()) > 0, first.stdout
    enc = cli.inv("secrets.encrypt", *ARGS, extra_env={"TINSNIP_AGE_IDENTITY": str(key)})
    assert "keeper-prod.env.age: changed" in enc.stdout, enc.stdout + enc.stderr
    assert not plain.exists() and (root / "secrets" / "keeper-prod.env.age").exists()
    assert plain_copies(root, TOKEN) == []

    no_key = cli.inv("service.deploy", *ARGS, "--service", "vaultapp", check=False)
    assert no_key.returncode == 2 and "set tinsnip.age_identity" in no_key.stderr

    p = cli.inv("service.deploy", *ARGS, "--service", "vaultapp",
                extra_env={"TINSNIP_AGE_IDENTITY": str(key)})
    assert sum(s["changed"] for s in p.summaries.values()) == 0, p.stdout  # same .env as before
    want = envfile.parse_secrets(SECRETS, "test")
    env = container_env(lab)
    assert {k: env.get(k) for k in want} == want
    assert {k: env[k].encode() for k in want} == {k: v.encode() for k, v in want.items()}
    assert TOKEN not in p.stdout + p.stderr + str(p.recap)
    assert plain_copies(root, TOKEN) == []
    mode = lab.run(HOST, f"stat -c %a /mnt/{USER}/service/vaultapp/.env").stdout.strip()
    assert mode == "600"


def test_an_edit_is_encrypted_redeployed_and_leaves_no_plain_copy(lab, project, tmp_path):
    cli, root, key = project
    new = f"n3w {random.token_hex(8)}"
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i " + shlex.quote(f"s/^DB_PASSWORD=.*/DB_PASSWORD='{new}'/")
                      + ' "$1"\n')
    editor.chmod(0o755)
    ident = {"TINSNIP_AGE_IDENTITY": str(key)}
    p = cli.inv("secrets.edit", *ARGS, extra_env={**ident, "EDITOR": str(editor)})
    assert "keeper-prod.env.age: changed" in p.stdout, p.stdout + p.stderr
    deployed = cli.inv("service.deploy", *ARGS, "--service", "vaultapp", extra_env=ident)
    assert "service.up           changed" in deployed.stdout, deployed.stdout
    env = container_env(lab)
    assert env["DB_PASSWORD"] == new and env["ODD_VALUE"] == f"ünï😀-{TOKEN}"
    assert plain_copies(root, new) == [] and plain_copies(root, TOKEN) == []
    again = cli.inv("service.deploy", *ARGS, "--service", "vaultapp", extra_env=ident)
    assert sum(s["changed"] for s in again.summaries.values()) == 0, again.stdout
