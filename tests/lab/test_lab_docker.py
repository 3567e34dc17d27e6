"""Rootless Docker on a lab machine: daemon, local busybox image, published port, Compose."""

import shlex
import time
import urllib.request

import pytest

pytestmark = pytest.mark.lab

HOST = "homelab1"
USER = "tslabdock"
UID = 4711
PORT = 10190
SOCKET = f"/run/user/{UID}/docker.sock"
PIDFILE = f"/run/tslab-dockerd-{USER}.pid"
LOG = f"/tmp/tslab-dockerd-{USER}.log"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


def _as_user(cmd):
    env = f"HOME=/home/{USER} XDG_RUNTIME_DIR=/run/user/{UID} PATH={PATH} " \
          f"DOCKER_HOST=unix://{SOCKET}"
    return (f"setpriv --reuid={UID} --regid={UID} --init-groups "
            f"env -i {env} sh -c {shlex.quote(cmd)}")


def _stop(lab):
    """Stop the daemon (SIGTERM to rootlesskit), then anything of USER's still running."""
    lab.run(HOST, f"test -s {PIDFILE} && kill $(cat {PIDFILE}); rm -f {PIDFILE}; "
                  f"for i in $(seq 100); do ps -o pid= -u {USER} >/dev/null || exit 0; "
                  f"sleep 0.1; done; kill -KILL $(ps -o pid= -u {USER})", warn=True)


@pytest.fixture(scope="module")
def docker(lab):
    """A rootless Docker daemon for a fresh user on homelab1; yields seconds to ready."""
    lab.run(HOST, f"useradd -m -u {UID} -s /bin/bash {USER}")
    # useradd gives the user a subordinate range itself when login.defs asks it to.
    for db in ("/etc/subuid", "/etc/subgid"):
        lab.run(HOST, f"grep -q '^{USER}:' {db} || echo {USER}:231072:65536 >> {db}")
    lab.run(HOST, f"install -d -m 700 -o {USER} -g {USER} /run/user/{UID}")
    started = time.monotonic()
    # setsid: the daemon must outlive this SSH session; the pid is rootlesskit's.
    daemon = (f"setpriv --reuid={UID} --regid={UID} --init-groups env -i HOME=/home/{USER} "
              f"USER={USER} LOGNAME={USER} XDG_RUNTIME_DIR=/run/user/{UID} PATH={PATH} "
              f"/usr/share/docker.io/contrib/dockerd-rootless.sh")
    lab.run(HOST, f"setsid -f sh -c {shlex.quote(f'echo $$ > {PIDFILE}; exec {daemon}')} "
                  f">{LOG} 2>&1 </dev/null")
    ready = None
    for _ in range(200):
        if lab.run(HOST, _as_user("docker info >/dev/null 2>&1"), warn=True).ok:
            ready = time.monotonic() - started
            break
        time.sleep(0.05)
    if ready is None:
        log = lab.run(HOST, f"tail -n 30 {LOG}", warn=True).stdout
        _stop(lab)
        pytest.fail(f"rootless dockerd did not answer on {SOCKET}:\n{log}")
    yield ready
    lab.run(HOST, _as_user("docker rm -f $(docker ps -aq) 2>/dev/null"), warn=True)
    _stop(lab)
    lab.run(HOST, f"sed -i '/^{USER}:/d' /etc/subuid /etc/subgid; userdel -r {USER}; "
                  f"rm -rf /run/user/{UID} {LOG}", warn=True)


def test_daemon_runs_rootless_for_a_plain_user(lab, docker):
    out = lab.run(HOST, _as_user("docker info --format '{{json .SecurityOptions}}'")).stdout
    assert "rootless" in out
    driver = lab.run(HOST, _as_user("docker info --format '{{.Driver}}'")).stdout.strip()
    assert driver == "overlay2"
    assert lab.run(HOST, f"stat -c %U {SOCKET}").stdout.strip() == USER
    assert docker < 10


def test_compose_v2_plugin_answers(lab, docker):
    out = lab.run(HOST, _as_user("docker compose version")).stdout
    assert "v2.40.3" in out


def _fetch(url, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_local_busybox_image_serves_a_published_port(lab, docker):
    loaded = lab.run(HOST, _as_user("docker load -i /opt/tinsnip/images/busybox.tar")).stdout
    assert "tinsnip/busybox:1.35" in loaded
    page = "echo served-by-homelab1 > /www/index.html; exec httpd -f -p 8080 -h /www"
    lab.run(HOST, _as_user(f"docker run -d --name tslab-web -p {PORT}:8080 "
                           f"tinsnip/busybox:1.35 sh -c {shlex.quote(page)}"))
    try:
        assert _fetch(f"http://{lab.ip(HOST)}:{PORT}/").strip() == "served-by-homelab1"
        from_peer = lab.run("homelab2", f"curl -sS --retry 20 --retry-delay 0 "
                                        f"--retry-all-errors -m 2 http://{HOST}:{PORT}/")
        assert from_peer.stdout.strip() == "served-by-homelab1"
        user = lab.run(HOST, _as_user("docker exec tslab-web id -u")).stdout.strip()
        assert user == "0"  # root in the container, USER's uid outside
        # this container's httpd only (other tests' services may serve from other folders)
        ps = lab.run(HOST, "ps -o user:32=,args= -C httpd").stdout.splitlines()
        outside = [line.split()[0] for line in ps if line.rstrip().endswith("-h /www")]
        assert outside and set(outside) == {USER}
    finally:
        lab.run(HOST, _as_user("docker rm -f tslab-web"), warn=True)


def test_compose_up_runs_a_service_from_the_local_image(lab, docker):
    compose = (
        "services:\n"
        "  web:\n"
        "    image: tinsnip/busybox:1.35\n"
        "    init: true\n"
        "    command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/etc\"]\n"
        "    ports: [\"10191:8080\"]\n"
    )
    lab.run(HOST, _as_user("docker load -q -i /opt/tinsnip/images/busybox.tar"))
    lab.run(HOST, _as_user(f"mkdir -p ~/web && printf %s {shlex.quote(compose)} "
                           f"> ~/web/compose.yaml"))
    try:
        lab.run(HOST, _as_user("cd ~/web && docker compose up -d"))
        assert "root:x:0:0" in _fetch(f"http://{lab.ip(HOST)}:10191/passwd")
    finally:
        lab.run(HOST, _as_user("cd ~/web && docker compose down -t 0"), warn=True)
