"""What each step wants, from SMEP numbers and the shipped inventory and templates."""
import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError
from tinsnip_tasks.ops.docker import ComposeUp, DockerImage, RootlessDocker, compose_pattern, unit_text
from tinsnip_tasks.plans import Target, generations, machine, nas, service, status
from tinsnip_tasks.plans import catalog as catalog_plan

ROOT = Path(__file__).resolve().parents[2]
GP = make_smep("dynamicalsystem", "gazette", "prod", 1)
GT = make_smep("dynamicalsystem", "gazette", "test", 1)


@pytest.fixture
def inv():
    return load_inventory(ROOT / "inventory.yaml", catalog=catalog())


def texts(cmds):
    return [c.text for c in cmds]


def test_export_line_matches_design(inv):
    [e] = nas.export(Target(inv, GP))
    new = e.edit("")
    assert new == ("# tinsnip: /volume1/dynamicalsystem/gazette/prod\n"
                   "/volume1/dynamicalsystem/gazette/prod homelab1(rw,sync,all_squash,"
                   "anonuid=10100,anongid=10100,no_subtree_check)\n")
    assert e.after == ("exportfs -ra",) and e.rollback and e.applied


def test_nas_tree_is_owned_by_the_uid(inv):
    dirs = nas.tree(Target(inv, GT))
    assert [d.path.rsplit("/", 1)[1] for d in dirs] == ["test", "state", "data", "config", "service"]
    assert {(d.uid, d.gid) for d in dirs} == {(10110, 10110)}


def test_fstab_line():
    assert machine.fstab_line("ds412plus", "/volume1/s/g/prod", "/var/lib/tinsnip/g-prod/nfs") == \
        "ds412plus:/volume1/s/g/prod /var/lib/tinsnip/g-prod/nfs nfs rw,hard,vers=3,nosuid,nodev,_netdev 0 0"


def test_mount_orders_rpc_statd_before_the_mounts_for_every_environment_in_one_write(inv):
    """Both environments of a host want the same drop-in: merged, it is one write, and systemd
    reads it again after."""
    drops = [r for t in (GP, GT) for r in machine.mount(Target(inv, t))
             if getattr(r, "path", "") == machine.STATD_DROPIN]
    assert len(drops) == 2 and drops[0].merged(drops[1]) is not None
    text = drops[0].edit("anything that was there\n")
    assert "[Unit]\nBefore=remote-fs-pre.target\n" in text and drops[1].edit(text) == text
    assert drops[0].after == (machine.SYSTEMD_RELOAD,)
    folder = next(r for r in machine.mount(Target(inv, GP))
                  if getattr(r, "path", "") == "/etc/systemd/system/rpc-statd.service.d")
    assert (folder.uid, folder.gid, folder.mode) == (0, 0, 0o755)


def test_subid_ranges_never_overlap_between_machine_uids():
    a, b = machine.subid_start(10100), machine.subid_start(10110)
    assert a + machine.SUBID_COUNT <= b and machine.subid_start(59990) + 65536 < 2**32


def test_xdg_links_point_into_the_mount(inv):
    links = [r for r in machine.xdg_links(Target(inv, GP)) if hasattr(r, "target")]
    assert {(r.link, r.target) for r in links} == {
        ("/home/gazette-prod/.local/state/dynamicalsystem/@gazette", "/mnt/gazette-prod/state"),
        ("/home/gazette-prod/.local/share/dynamicalsystem/@gazette", "/mnt/gazette-prod/data"),
        ("/home/gazette-prod/.config/dynamicalsystem/@gazette", "/mnt/gazette-prod/config")}


def test_machine_env_has_every_number_and_the_socket(inv):
    text = machine.machine_env_text(GT)
    values = dict(l.split("=", 1) for l in text.splitlines() if l and not l.startswith("#"))
    assert values["TIN_SERVICE_UID"] == "10110"
    assert [values[f"TIN_PORT_{i}"] for i in range(10)] == [str(10110 + i) for i in range(10)]
    assert values["DOCKER_HOST"] == "unix:///run/user/10110/docker.sock"
    assert values["TIN_DATA_DIR"] == "/home/gazette-test/.local/share/dynamicalsystem/@gazette"
    env_file = machine.machine_env(Target(inv, GT))[1]
    assert env_file.mode == 0o640 and not env_file.secret  # no secret in it: the diff shows it


def test_hello_compose_follows_the_seed_pattern(inv):
    r = catalog_plan.render_service(inv, GP, "hello")
    compose, env = r.compose, r.env
    assert 'user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"' in compose
    assert "- ../../.machine/machine.env" in compose and "- .env" in compose
    assert '"${TIN_PORT_0}:8080"' in compose
    # the deploy command unsets XDG_*: compose must not depend on them
    assert "XDG_" not in compose
    assert "HELLO_HTTP_PORT=10100" in env


def test_service_not_on_machine_is_refused(inv):
    with pytest.raises(InputError, match="does not run 'lldap'"):
        catalog_plan.render_service(inv, GP, "lldap")


def test_lldap_needs_its_secrets(inv, tmp_path):
    lp = make_smep("dynamicalsystem", "lldap", "prod", 2)
    with pytest.raises(InputError, match="LLDAP_JWT_SECRET"):
        catalog_plan.render_service(inv, lp, "lldap")


def test_service_env_file_is_private(inv):
    files = service.files(Target(inv, GP, "hello"))
    env = [f for f in files if getattr(f, "path", "").endswith("/.env")][0]
    assert env.mode == 0o600 and env.secret


def test_deploy_runs_the_seeds_exact_command():
    up = ComposeUp("gazette-prod", 10100, "/mnt/gazette-prod", "/mnt/gazette-prod/service/hello",
                   "hello", "abc")
    cmd = texts(up.plan("hello\n@@stamp\nold\n@@ps\n"))[0]
    assert cmd.startswith("sudo -u gazette-prod bash -c '")
    # both files checked against the digests kept behind the gate, then the seed's command
    assert cmd.count("/var/lib/tinsnip/gazette-prod/sums") == 4
    assert cmd.endswith(" && set -a && source /mnt/gazette-prod/.machine/machine.env"
                        " && source /mnt/gazette-prod/service/hello/.env && set +a && unset XDG_DATA_HOME"
                        " XDG_CONFIG_HOME XDG_STATE_HOME && cd /mnt/gazette-prod/service/hello && "
                        "docker compose up -d'")


def test_compose_is_asked_for_the_services_only_when_the_stamp_names_none():
    up = ComposeUp("u", 1, "/m", "/m/service/s", "s", "abc")
    fact = up.fact_command()
    assert fact.startswith("sudo -u u env DOCKER_HOST=unix:///run/user/1/docker.sock bash -c ")
    script = shlex.split(fact)[-1]
    asks = script.index("docker compose config --services")
    assert script.index("hash|service) named=1;;") < script.index(
        "if [ -n \"$named\" ]; then cd /m/service/s; else ") < asks < script.index(
        "; fi && echo @@stamp")


FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$DOCKER_LOG"
case "$1 $2" in
  "inspect -f") [ "$INSPECT_RC" = 0 ] && printf '%s\\n' "sha256:aa" "$CONTAINER"; exit "$INSPECT_RC";;
  "ps -a") echo "hello running h-from-ps";;
  "image inspect") echo sha256:bb;;
esac
"""
C1 = "c" * 64


def run_service_fact(tmp_path, stamp: str, *, inspect_rc=0, container="hello running h1"):
    """ComposeUp's fact run by bash against a fake ``docker``: the parsed fact, and the
    Docker commands it ran."""
    bin_dir, d = tmp_path / "bin", tmp_path / "service"
    bin_dir.mkdir(exist_ok=True)
    d.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (d / ".tinsnip-deployed").write_text(stamp)
    log = tmp_path / "docker.log"
    log.write_text("")
    up = ComposeUp("u", 1, "/m", str(d), "hello", "abc", images=("busybox",))
    out = subprocess.run(["bash", "-c", shlex.split(up.fact_command())[-1]], capture_output=True,
                         text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "DOCKER_LOG": str(log),
                                         "INSPECT_RC": str(inspect_rc), "CONTAINER": container})
    return up, up.parse(out.stdout), log.read_text().splitlines()


def test_a_no_op_deploy_asks_docker_once_for_the_stamped_containers_and_images(tmp_path):
    stamp = f"abc\nimage busybox sha256:aa\nhash hello h1\ncontainer {C1}\n"
    up, fact, calls = run_service_fact(tmp_path, stamp)
    # one client: the image as no container can be named, then the recorded container
    assert len(calls) == 1 and calls[0].startswith("inspect -f ")
    assert calls[0].endswith(f" busybox:latest {C1}")
    assert fact["running"] == {"hello"} and fact["hashes"] == {"hello": "h1"}
    assert fact["images"] == {"busybox": "sha256:aa"}
    assert up.commands(fact) == []


@pytest.mark.parametrize("stamp, rc, container", [
    (f"abc\nimage busybox sha256:aa\nhash hello h1\ncontainer {C1}\n", 1, "hello running h1"),
    (f"abc\nimage busybox sha256:aa\nhash hello h1\ncontainer {C1}\n", 0, "hello exited h1"),
    ("abc\nimage busybox sha256:aa\nhash hello h1\n", 0, "hello running h1"),
    ("abc\nimage busybox sha256:aa\nhash hello h1\ncontainer $(touch x)\n", 0, "hello running h1"),
], ids=["an-object-is-gone", "a-container-stopped", "a-stamp-without-containers",
        "a-container-line-that-is-no-id"])
def test_otherwise_docker_ps_and_each_image_answer_as_before(tmp_path, stamp, rc, container):
    up, fact, calls = run_service_fact(tmp_path, stamp, inspect_rc=rc, container=container)
    assert [c.split(" -", 1)[0] for c in calls if not c.startswith("inspect")] == ["image inspect", "ps"]
    assert all(C1 in c for c in calls if c.startswith("inspect"))
    assert fact["hashes"] == {"hello": "h-from-ps"} and fact["images"] == {"busybox": "sha256:bb"}
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("containers", ["", f"container {C1}\n"], ids=["slow", "fast"])
def test_the_versions_a_deploy_reads_are_those_the_generations_fact_gives(tmp_path, containers):
    """Run for real (a fake ``docker``): the running version and ``now`` keyed by the reader
    from service.up's fact, the generations as the host lists them, equal the versions the
    standalone generations fact (rollback's) computes on the host."""
    from tinsnip_tasks.ops import health

    up, _, _ = run_service_fact(tmp_path, f"abc\nimage busybox sha256:aa\nhash hello h1\n"
                                          f"{containers}")
    gens = tmp_path / "gens"
    (gens / "2" / "files").mkdir(parents=True)
    (gens / "2" / "files" / ".tinsnip-deployed").write_text("old\nimage busybox sha256:00\n")
    (gens / "2" / "next").write_text("x\n")
    save = health.SaveGeneration("u", 1, "/m", up.service_dir, str(gens), "hello", "new",
                                 images=up.images)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "DOCKER_LOG": "/dev/null",
           "INSPECT_RC": "0", "CONTAINER": "hello running h1"}
    out = subprocess.run(["bash", "-c", shlex.split(save.fact_command())[-1]],
                         capture_output=True, text=True, env=env).stdout
    host = subprocess.run(["bash", "-c", health.versions_script(up.service_dir, str(gens),
                                                                ("busybox",))],
                          capture_output=True, text=True, env=env).stdout
    mine, theirs = save.parse(out), health.parse_generations(host)
    assert theirs.live.startswith("abc+") and theirs.gens[0].stamp.startswith("old+")
    # both ask the daemon (the fake says sha256:aa to inspect, sha256:bb to image inspect)
    if not containers:
        assert mine == theirs
    else:
        assert (mine.live, mine.gens) == (theirs.live, theirs.gens) and mine.now != theirs.now
        assert mine.now == health.version_key("image busybox sha256:aa\n")


def test_the_stamp_records_each_running_container_by_its_full_id():
    up = ComposeUp("u", 1, "/m", "/m/service/s", "s", "abc")
    record = up.plan("")[-1]
    assert "docker ps --no-trunc " in texts([record])[0]
    assert "{{println}}container {{.ID}}" in texts([record])[0]


@pytest.mark.parametrize("fact, needs_up", [
    ("hello\n@@stamp\nabc\n@@ps\nhello running", False),
    ("hello\n@@stamp\nold\n@@ps\nhello running", True),
    ("hello\n@@stamp\nabc\n@@ps\nhello exited", True),
    ("hello\nworker\n@@stamp\nabc\n@@ps\nhello running", True),
    ("hello\n@@stamp\n@@ps\n", True),
    ("", True),
    ("hello\n@@stamp\nabc\nhash hello h1\n@@ps\nhello running h1", False),
    ("hello\n@@stamp\nabc\nhash hello h1\n@@ps\nhello running h2", True),
    ("hello\n@@stamp\nabc\n@@ps\nhello running h2", False),
    # a stamp that names the services: Compose is not asked, the stamp's services must run
    ("@@stamp\nabc\nhash hello h1\n@@ps\nhello running h1", False),
    ("@@stamp\nabc\nhash hello h1\nhash worker h2\n@@ps\nhello running h1\nworker exited h2",
     True),
    ("@@stamp\nabc\nservice hello busybox:1.36 sha256:1 busybox@sha256:2\n@@ps\nhello running",
     False),
    ("@@stamp\nold\nhash hello h1\n@@ps\nhello running h1", True),
], ids=["current", "files-changed", "stopped", "one-service-missing", "never-started", "no-files",
        "same-configuration", "started-by-hand-with-another-configuration", "stamp-without-hashes",
        "stamp-names-the-services", "a-service-of-the-stamp-stopped", "stamp-with-service-lines",
        "stamp-names-the-services-files-changed"])
def test_compose_up_only_when_needed(fact, needs_up):
    up = ComposeUp("u", 1, "/m", "/m/service/s", "s", "abc")
    cmds = up.plan(fact)
    assert bool(cmds) is needs_up
    if needs_up:
        # the stamp is written by the machine user, through a fresh temporary file
        assert texts(cmds)[-1].startswith("sudo -u u env DOCKER_HOST=unix:///run/user/1/docker.sock sh -c ")
        assert "mktemp .tinsnip-deployed.XXXXXXXXXX" in texts(cmds)[-1]
        assert str(cmds[-1]) == ("as u: record abc and the image digests in "
                                 "/m/service/s/.tinsnip-deployed")
        # and the configuration each service runs with, to notice a start by hand
        assert "com.docker.compose.config-hash" in texts(cmds)[-1]


def test_stamp_follows_every_file_the_service_starts_from(inv):
    a = generations.stamp(GP, catalog_plan.render_service(inv, GP, "hello"))
    assert a == generations.stamp(GP, catalog_plan.render_service(inv, GP, "hello"))
    assert a != generations.stamp(GT, catalog_plan.render_service(inv, GT, "hello"))


def test_rootless_docker_without_systemd_starts_detached():
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod")
    fact = "init=sshd\nscript=/usr/share/docker.io/contrib/dockerd-rootless.sh\nrootlesskit=yes\nuidmap=yes\n"
    t = texts(r.plan(fact))
    assert t[0] == "install -d -m 700 -o 10100 -g 10100 /run/user/10100"
    assert t[2].startswith("setsid -f env -i HOME=/home/gazette-prod")
    # the log is opened by the user's shell, never by root (the user could link it anywhere)
    assert ("setpriv --reuid=10100 --regid=10100 --init-groups sh -c 'exec \"$0\" >> \"$1\" "
            "2>&1 < /dev/null' /usr/share/docker.io/contrib/dockerd-rootless.sh "
            "/home/gazette-prod/.local/state/tinsnip/dockerd.log > /dev/null") in t[2]
    assert t[1].startswith("setpriv --reuid=10100 ") and "mkdir -p" in t[1]
    assert "XDG_RUNTIME_DIR=/run/user/10100" in t[2] and t[2].endswith("< /dev/null")
    assert "setpriv --reuid=10100 --regid=10100 --clear-groups sh -c 'cd / && tail -n 5" in t[3]
    assert r.plan(fact + "server=20.10.24\n") == []


SD_FACT = "init=systemd\nscript=/usr/bin/dockerd-rootless.sh\nrootlesskit=yes\nuidmap=yes\n"


def _unit_sha(script="/usr/bin/dockerd-rootless.sh"):
    import hashlib
    from tinsnip_tasks.ops.docker import unit_text
    return hashlib.sha256(unit_text(10100, script).encode()).hexdigest()


def test_rootless_docker_with_systemd_is_a_lingering_user_unit():
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod")
    t = texts(r.plan(SD_FACT))
    assert "loginctl enable-linger gazette-prod" in t
    assert "systemctl start user@10100.service" in t
    assert "systemctl --user -M gazette-prod@ daemon-reload" in t
    assert "systemctl --user -M gazette-prod@ enable --now docker.service" in t
    assert any("cd -P -- /home/gazette-prod/.config/systemd/user " in x and
               "docker.service" in x for x in t)
    assert "loginctl enable-linger gazette-prod" not in texts(r.plan(SD_FACT + "linger=yes\n"))


def test_systemd_unit_starts_the_script_the_host_has():
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod")
    unit = [c for c in r.plan(SD_FACT) if "docker.service through" in str(c)]
    assert str(unit[0]).startswith("as UID 10100: write ")
    unit = unit_text(10100, "/usr/bin/dockerd-rootless.sh")
    assert "ExecStart=/usr/bin/dockerd-rootless.sh\n" in unit
    assert "UnsetEnvironment=XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME" in unit


def test_systemd_daemon_in_place_is_left_alone():
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod")
    good = SD_FACT + f"linger=yes\nunit={_unit_sha()}\nenabled=yes\nactive=yes\nserver=20.10\n"
    assert r.plan(good) == []


@pytest.mark.parametrize("drop, want, unwanted", [
    (("enabled=",), "enable --now docker.service", "daemon-reload"),
    (("active=", "server="), "enable --now docker.service", "daemon-reload"),
    (("server=",), "restart docker.service", "daemon-reload"),
    (("unit=",), "restart docker.service", "enable --now"),
])
def test_systemd_repairs_only_what_is_wrong(drop, want, unwanted):
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod")
    good = SD_FACT + f"linger=yes\nunit={_unit_sha()}\nenabled=yes\nactive=yes\nserver=20.10\n"
    fact = "\n".join(l for l in good.splitlines() if not l.startswith(drop)) + "\n"
    t = " ; ".join(texts(r.plan(fact)))
    assert want in t and unwanted not in t
    assert "enable-linger" not in t
    if drop == ("unit=",):
        assert "daemon-reload" in texts(r.plan(fact))[-3]


def test_systemd_daemon_started_before_its_mount_is_restarted():
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod", mount_point="/mnt/gazette-prod")
    good = SD_FACT + f"linger=yes\nunit={_unit_sha()}\nenabled=yes\nactive=yes\nserver=20.10\n"
    assert r.plan(good) == []
    t = " ; ".join(texts(r.plan(good + "before_mount=yes\n")))
    assert "restart docker.service" in t and "daemon-reload" not in t
    assert "ActiveEnterTimestampMonotonic" in r.fact_command()
    assert "ActiveEnterTimestampMonotonic" not in RootlessDocker("u", 1, "/h").fact_command()


def test_the_daemon_counts_as_running_with_its_socket_and_a_dockerd_of_the_user(tmp_path):
    """Read for real: the socket looked at as the user with its other files, then a process
    lookup; the docker client is not started."""
    import os
    import shutil
    import socket
    import tempfile
    import time

    uid = 4246  # no account needed: setpriv runs processes as bare UIDs
    r = RootlessDocker("someone", uid, str(tmp_path))
    assert "docker version" not in r.fact_command()

    def fact():
        return r.parse(subprocess.run(["sh", "-c", r.fact_command()], capture_output=True,
                                      text=True).stdout)

    runtime = Path(f"/run/user/{uid}")
    runtime.mkdir(parents=True, exist_ok=True)
    os.chown(runtime, uid, uid)
    bin_dir = Path(tempfile.mkdtemp())
    bin_dir.chmod(0o755)
    shutil.copy("/bin/sleep", bin_dir / "dockerd")
    sock, daemon = socket.socket(socket.AF_UNIX), None
    try:
        assert "socket" not in fact() and "server" not in fact()
        sock.bind(str(runtime / "docker.sock"))
        assert fact().get("socket") == "yes" and "server" not in fact()
        daemon = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                   "--clear-groups", str(bin_dir / "dockerd"), "30"])
        for _ in range(50):
            if subprocess.run(["pgrep", "-u", str(uid), "-x", "dockerd"]).returncode == 0:
                break
            time.sleep(0.05)
        assert "server" not in fact()  # no pid file: no daemon serves that socket
        pid_file = runtime / "docker.pid"
        for pid in (os.getpid(), 1):  # a process of another user, whatever its name
            pid_file.write_text(str(pid))
            assert "server" not in fact()
        pid_file.write_text(str(daemon.pid))  # as dockerd writes it: no newline
        assert fact().get("server") == "yes"
    finally:
        if daemon:
            daemon.kill()
            daemon.wait()
        sock.close()
        shutil.rmtree(runtime)
        shutil.rmtree(bin_dir)


def test_systemd_daemon_from_a_login_session_is_refused_with_the_fix():
    r = RootlessDocker("gazette-prod", 10100, "/home/gazette-prod")
    fact = SD_FACT + f"linger=yes\nunit={_unit_sha()}\nenabled=yes\nserver=20.10\n"
    with pytest.raises(Exception, match="started outside the unit.*pkill -u gazette-prod"):
        r.plan(fact)


def test_rootless_docker_names_missing_packages():
    with pytest.raises(Exception, match="rootlesskit"):
        RootlessDocker("u", 1, "/h").plan("init=sshd\nscript=/x\nuidmap=yes\n")


def test_image_loaded_only_when_missing():
    i = DockerImage("u", 10100, "tinsnip/busybox:1.35", "/opt/tinsnip/images/busybox.tar")
    assert i.plan("sha256:abc") == []
    assert "docker load -q -i /opt/tinsnip/images/busybox.tar" in texts(i.plan("missing"))[-1]


def test_compose_pattern_sources_then_unsets():
    p = compose_pattern("/mnt/x", "/mnt/x/service/s", "ps")
    assert p.index("source") < p.index("set +a") < p.index("unset XDG_DATA_HOME")


GATE_GOOD = ["@gate 0_10100_710_directory", "@link /var/lib/tinsnip/gazette-prod/nfs",
             "@outsider closed", "@oldmount "]


def test_status_evaluation():
    facts = status.parse("\n".join([
        "@daemon 0 20.10.24", "@compose\thello\t0\t", "@write user:data 0",
        "@container /hello-hello-1 running 0", "@env /hello-hello-1 10100 10100",
        "@port /hello-hello-1 10100", "@write hello-hello-1:/data 0", "@listen 10100", "@listen 22",
        "@init sshd", "@mount ds412plus:/volume1/d/gazette/prod fuse.nfs rw,nosuid,nodev",
        *GATE_GOOD, "@dockerhost unix:///run/user/10100/docker.sock", "@dockerd 77 /",
        "@daemonenv 77 "]))
    result = status.evaluate(facts, GP)
    assert all(ok for _, ok, _ in result), result
    assert [item for item, _, _ in result] == [i for i, _ in status.ITEMS
                                               if i not in status.SYSTEMD_ONLY]
    bad = status.parse("\n".join([
        "@daemon 1 Cannot connect", "@compose\thello\t0\tWARN The \"TIN_PORT_0\" variable is not set.",
        "@write user:data 1", "@container /h restarting 3", "@env /h 10100",
        "@port /h 20000", "@init sshd", "@dockerd 5 /", "@daemonenv 5 XDG_STATE_HOME=/mnt/x"]))
    result = {item: ok for item, ok, _ in status.evaluate(bad, GP)}
    assert not any(result.values()), result


SD_GOOD = ["@init systemd", "@mount ds412plus:/volume1/d/gazette/prod fuse.nfs rw,nosuid,nodev",
           *GATE_GOOD,
           "@dockerhost unix:///run/user/10100/docker.sock", "@linger 1", "@enabled 1",
           "@dockerd 77 /user.slice/user-10100.slice/user@10100.service/app.slice/docker.service",
           "@daemonenv 77 "]


def _host_items(lines, program="inv"):
    return {item: (ok, detail) for item, ok, detail in
            status._host_items(status.parse("\n".join(lines)), GP, program)}


def test_status_on_systemd_checks_the_user_unit():
    items = _host_items(SD_GOOD)
    assert set(items) == {"mount", "gate", "docker_host", "xdg", "linger", "unit", "session"}
    assert all(ok for ok, _ in items.values()), items


@pytest.mark.parametrize("change, item, fix", [
    (("@linger 1", "@linger 0"), "linger", "loginctl enable-linger gazette-prod"),
    (("@enabled 1", "@enabled 0"), "unit",
     "systemctl --user -M gazette-prod@ enable --now docker.service"),
    (("@daemonenv 77 ", "@daemonenv 77 XDG_DATA_HOME=/mnt/gazette-prod/data"), "xdg",
     "inv machine.docker --machine gazette --env prod"),
    (("@dockerhost unix:///run/user/10100/docker.sock", "@dockerhost unix:///var/run/docker.sock"),
     "docker_host", "inv machine.env --machine gazette --env prod"),
    (("@dockerd 77 /user.slice/user-10100.slice/user@10100.service/app.slice/docker.service",
      "@dockerd 77 /user.slice/user-10100.slice/session-4.scope"), "session",
     "pkill -u gazette-prod -x rootlesskit"),
    (("@mount ds412plus:/volume1/d/gazette/prod fuse.nfs rw,nosuid,nodev", "@mount "), "mount",
     "inv machine.mount --machine gazette --env prod"),
    (("@mount ds412plus:/volume1/d/gazette/prod fuse.nfs rw,nosuid,nodev",
      "@mount ds412plus:/volume1/d/gazette/prod nfs rw,nodev"), "mount",
     "mounted without nosuid: run `umount /var/lib/tinsnip/gazette-prod/nfs`"),
    (("@gate 0_10100_710_directory", "@gate 10100_10100_700_directory"), "gate",
     "/var/lib/tinsnip/gazette-prod is owner 10100:10100, mode 700, a directory, not a folder of "
     "0:10100 with mode 0710: run `inv machine.setup --machine gazette --env prod`"),
    (("@link /var/lib/tinsnip/gazette-prod/nfs", "@link"), "gate",
     "/mnt/gazette-prod is not a link, not a link to /var/lib/tinsnip/gazette-prod/nfs"),
    (("@outsider closed", "@outsider open"), "gate", "UID 65534 can enter /mnt/gazette-prod"),
    (("@oldmount ", "@oldmount ds412plus:/volume1/d/gazette/prod"), "gate",
     "ds412plus:/volume1/d/gazette/prod is still mounted directly on /mnt/gazette-prod"),
])
def test_each_failure_mode_fails_its_item_with_the_fix(change, item, fix):
    items = _host_items([change[1] if line == change[0] else line for line in SD_GOOD])
    assert [i for i, (ok, _) in items.items() if not ok] == [item]
    assert fix in items[item][1]
    # the fix names the program that runs
    assert fix.replace("inv ", "fab ") in _host_items(
        [change[1] if line == change[0] else line for line in SD_GOOD], "fab")[item][1]


def test_a_machine_environment_never_set_up_is_one_failed_item():
    assert status.evaluate(status.parse("@nouser\n"), GP, "tinsnip") == [
        ("user", False, "gazette-prod does not exist on this host: this machine-environment is "
         "not set up; run `tinsnip machine.setup --machine gazette --env prod`")]


def test_the_checklist_script_asks_for_the_user_first():
    text = status.script(GP)
    assert text.index("id -u gazette-prod") < text.index("sudo -u")


def test_station_plan_exports_read_only_to_every_machine_host(inv):
    st = inv.station("dynamicalsystem", "prod")
    res = nas.station(Target(inv, st.smep))
    registry, export = res[2], res[3]
    assert registry.edit("") == "gazette=01\nlldap=02\ngateway=03\n"
    assert registry.edit("x=05\n") == "x=05\n"
    assert export.edit("") == (
        "# tinsnip: /volume1/dynamicalsystem/station/prod\n"
        "/volume1/dynamicalsystem/station/prod homelab1(ro,sync,all_squash,anonuid=10000,"
        "anongid=10000,no_subtree_check) homelab2(ro,sync,all_squash,"
        "anonuid=10000,anongid=10000,no_subtree_check) homelab3(ro,sync,all_squash,"
        "anonuid=10000,anongid=10000,no_subtree_check)\n")
    assert st.registry == "/volume1/dynamicalsystem/station/prod/machine-registry"


def test_status_reads_a_service_folder_with_a_space_and_a_vanished_container(tmp_path):
    """The script's own output for a folder `my app`, and for a container gone mid-check."""
    svc = tmp_path / "service" / "my app"
    svc.mkdir(parents=True)
    (svc / "docker-compose.yml").write_text("services: {}\n")
    line = subprocess.run(["sh", "-c", 'for dir in "$1"/service/*/; do rc=3; err="bad\nthing"; '
                           + next(l for l in status.user_script(GP).split("\n") if "@compose" in l) + "; done", "_", str(tmp_path)],
                          capture_output=True, text=True).stdout
    facts = status.parse(line + "@env \n@container \n")
    assert facts["compose"] == [("my app", 3, "bad thing")]
    assert facts["env"] == [] and facts["container"] == []


@pytest.mark.parametrize("exports, client, found", [
    ("/v/s/g/prod homelab1(rw,sync)\n", "homelab1", True),
    ("# tinsnip: /v/s/g/prod\n/v/s/g/prod homelab1(rw) homelab2(rw)\n", "homelab2", True),
    ("/v/s/g/prod homelab1(rw)\n", "homelab2", False),
    ("/v/s/g/test homelab1(rw)\n", "homelab1", False),
    ("/v/s/g/prod 10.0.0.0/24(rw)\n", "10.0.0.7", True),
    ("/v/s/g/prod 10.0.0.0/24(rw)\n", "10.0.1.7", False),
    ("/v/s/g/prod *(ro)\n", "box", True),
    ("# /v/s/g/prod homelab1(rw)\n", "homelab1", False),
    ("", "homelab1", False),
])
def test_exported_to_reads_the_nas_exports(exports, client, found):
    assert nas.exported_to(exports, "/v/s/g/prod", client) is found


def test_a_service_deploy_reads_its_generations_and_its_project_in_one_fact(inv):
    """service.generation and service.up share one fact (one shell of the user, one docker
    image inspect per tracked image): the facts script reads it once for both."""
    t = Target(inv, GP, "hello")
    gen, up = service.generation(t)[0], service.up(t)[0]
    assert gen.fact_command() == up.fact_command()
    assert gen.fact_command().count("docker image inspect") == len(up.images) == 1
    out = ("@@stamp\nabc\nhash hello h1\nimage busybox:1.36 sha256:1\n@@ps\nhello running h1\n"
           "@@images\nimage busybox:1.36 sha256:2\n@@versions\n"
           "gen=3 stamp=old next=abc+k1 saved=t\n")
    assert up.parse(out)["images"] == {"busybox:1.36": "sha256:2"} and up.moved(up.parse(out))
    key = hashlib.sha256  # the running version and now: keyed from the stamp and the images
    assert gen.parse(out).live == "abc+" + key(b"image busybox:1.36 sha256:1\n").hexdigest()[:12]
    assert gen.parse(out).now == key(b"image busybox:1.36 sha256:2\n").hexdigest()[:12]
    assert gen.parse(out).gens[0].number == 3
    assert "live=" not in gen.fact_command() and "now=" not in gen.fact_command()
