"""The kernel tier: tinsnip's flow on hosts with a kernel of their own (QEMU), reached over real
SSH like every lab host: ds920 runs the kernel NFS server, homelab4 systemd and the kernel NFS
client. The hosts boot once per session, in the background from the session's start."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from e2e.conftest import ROOT, Cli, http, steps  # noqa: F401  (http, steps: used by the tests)
from tinsnip_lab import pybase, settings
from tinsnip_lab.testing import FIGURES
from tinsnip_tasks.core.inventory import load_inventory

HOST, NAS, MACHINE = "homelab4", "ds920", "gazette"
EXAMPLE = ROOT / "examples" / "pyhello"
#: The machine users' daemons pull through the lab's registry on the fast NAS (no internet).
MIRROR = {"registry_mirrors": [f"http://{settings.REGISTRY_HOST}:{settings.REGISTRY_PORT}"],
          "insecure_registries": [f"{settings.REGISTRY_HOST}:{settings.REGISTRY_PORT}"]}
#: The uv example builds Python on the machine: minutes under software emulation, so it runs
#: only when asked (the tier's own folder service, ``counter``, is built there by default).
PYHELLO = os.environ.get("TINSNIP_KERNEL_PYHELLO") == "1"

# A service of the user's own, built on homelab4 from its folder by the rootless daemon's
# classic builder: it counts its starts in its NFS-backed data folder and serves the count.
COUNTER = {
    "Dockerfile": "FROM busybox:1.36\nCOPY counter.sh /counter.sh\n"
                  "CMD [\"sh\", \"/counter.sh\"]\n",
    "counter.sh": "set -eu\nn=$(cat /data/starts 2>/dev/null || echo 0)\n"
                  "n=$((n + 1))\necho $n > /data/starts\nmkdir -p /tmp/www\n"
                  "echo \"counter from $TIN_MACHINE_NAME-$TIN_SERVICE_ENVIRONMENT uid $(id -u) "
                  "starts $n\" > /tmp/www/index.html\nexec httpd -f -p 8080 -h /tmp/www\n",
    "docker-compose.yml": "services:\n  counter:\n    build: .\n    init: true\n"
                          "    restart: unless-stopped\n    env_file:\n"
                          "      - ../../.machine/machine.env\n      - .env\n"
                          "    user: \"${TIN_SERVICE_UID}:${TIN_SERVICE_UID}\"\n"
                          "    ports: [\"${TIN_PORT_WEB}:8080\"]\n"
                          "    volumes: [\"${TIN_DATA_DIR}/counter:/data\"]\n",
    "service.yaml": "ports: [web]\n",
    "service.env": "",
}


def args(env="prod"):
    return ("--machine", MACHINE, "--env", env)


class Env:
    """One machine-environment of gazette on homelab4: its user, UID, ports, paths."""

    def __init__(self, inventory, env):
        smep = load_inventory(str(inventory)).smep(MACHINE, env)
        self.env, self.user, self.uid = env, smep.user, smep.uid
        self.mount = smep.mount_point
        self.nas_dir = f"/volume1/dynamicalsystem/{MACHINE}/{env}"
        self.args = args(env)
        self.unit = f"/home/{self.user}/.config/systemd/user/docker.service"
        self.systemctl = f"systemctl --user -M {self.user}@"

    def docker(self, hosts, command):
        return hosts.run(HOST, f"sudo -u {self.user} env DOCKER_HOST=unix:///run/user/{self.uid}"
                             f"/docker.sock docker {command}", warn=True, timeout=300)


def real_mount(hosts, env):
    """Where ``env``'s export is mounted (``/mnt/M-E`` may be a link to it)."""
    return hosts.run(HOST, f"readlink -f {env.mount}").stdout.strip()


def fstab_entry(hosts, env):
    """The fields of the /etc/fstab line tinsnip wrote for ``env``'s mount."""
    where = real_mount(hosts, env)
    for line in hosts.read(HOST, "/etc/fstab").splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[1] == where:
            return fields
    raise AssertionError(f"no fstab line for {env.mount}")


def timed(label, fn, *a, **kw):
    """Run ``fn``, add how long it took to the session's figures."""
    started = time.monotonic()
    result = fn(*a, **kw)
    FIGURES.append(f"{label}: {time.monotonic() - started:.1f}s")
    return result


def status(cli, env):
    """machine.status: the run and {item: (state, text)} of its status lines."""
    p = cli.inv("machine.status", *env.args, check=False)
    return p, {k[7:]: v for k, v in steps(p, HOST).items() if k.startswith("status.")}


def failed(items):
    return sorted(k for k, (state, _) in items.items() if state != "ok")


def changed(p):
    return sum(s["changed"] for s in p.summaries.values())


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """An inventory (gazette prod and test on homelab4, its NAS ds920) with the catalog's hello
    and two services built from their folders: ``counter`` and the uv example."""
    root = tmp_path_factory.mktemp("kernel-homelab")
    for name, text in COUNTER.items():
        (root / "src" / "counter").mkdir(parents=True, exist_ok=True)
        (root / "src" / "counter" / name).write_text(text)
    if PYHELLO:
        if not (EXAMPLE / "vendor" / "uv").is_file():
            subprocess.run([str(EXAMPLE / "vendor.sh")], check=True,
                           env={**os.environ, "PYTHON": sys.executable})
        shutil.copytree(EXAMPLE, root / "src" / "pyhello",
                        ignore=shutil.ignore_patterns("__pycache__"))
        with open(root / "src" / "pyhello" / "service.env", "a") as f:
            f.write(f"PYHELLO_BASE_IMAGE={pybase.IMAGE}\n")
    inventory = {
        "sheets": {"dynamicalsystem": {"nas": NAS, "volume": "/volume1", "docker": MIRROR}},
        "nas": {NAS: {"host": NAS}},
        "machines": {MACHINE: {
            "sheet": "dynamicalsystem", "host": HOST, "environments": ["prod", "test"],
            "services": {"hello": {"http": 0},
                         "counter": {"path": "src/counter", "ports": {"web": 1}}}}},
    }
    if PYHELLO:
        inventory["machines"][MACHINE]["services"]["pyhello"] = {"path": "src/pyhello",
                                                                 "ports": {"web": 2}}
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return root / "inventory.yaml"


@pytest.fixture(scope="session")
def kcli(site):
    return Cli(site)


@pytest.fixture(scope="session")
def prod(site):
    return Env(site, "prod")


def import_base_image(hosts, env):
    """The Debian+python3 base image of the uv example, imported as the machine user."""
    hosts.connection(HOST).put(str(pybase.tarball()), "/tmp/pybase.tar.gz")
    hosts.run(HOST, "chmod 644 /tmp/pybase.tar.gz")
    assert env.docker(hosts, f"import /tmp/pybase.tar.gz {pybase.IMAGE}").ok
    hosts.run(HOST, "rm -f /tmp/pybase.tar.gz")


def set_up(hosts, cli, env, services=("hello",)):
    """nas.setup, machine.setup and service.deploy of ``services`` for ``env``; the runs."""
    runs = [timed(f"nas.setup {env.env}", cli.inv, "nas.setup", *env.args),
            timed(f"machine.setup {env.env} (first run)", cli.inv, "machine.setup", *env.args)]
    for service in services:
        runs.append(deploy(hosts, cli, env, service, "first run"))
    return runs


def deploy(hosts, cli, env, service, label):
    """service.deploy of ``service``, timed; the uv example with its base image and a longer
    command timeout (its build runs Python under emulation)."""
    extra = ()
    if service == "pyhello":
        import_base_image(hosts, env)
        extra = ("-T", "1800")
    return timed(f"service.deploy {env.env} {service} ({label})", cli.inv, *extra,
                 "service.deploy", *env.args, "--service", service)


@pytest.fixture(scope="session")
def deployed(kernel_lab, kcli, prod):
    """gazette prod on homelab4 against ds920: station, NAS, machine, hello and counter."""
    kcli.inv("nas.station", "--sheet", "dynamicalsystem")
    return set_up(kernel_lab, kcli, prod, services=("hello", "counter"))
