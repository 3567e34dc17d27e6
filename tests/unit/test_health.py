"""The health gate and generations (ops/health.py): facts in, commands out; the gate's decisions
against a host whose answers are given, command by command."""
import hashlib
import json
import subprocess
from types import SimpleNamespace

import pytest

from tinsnip_tasks.errors import HealthError, InputError, RemoteError
from tinsnip_tasks.ops import health
from tinsnip_tasks.ops.health import (Container, Gate, Generation, GenerationTags, Rollback,
                                      SaveGeneration, State, after_up, parse_diagnosis,
                                      parse_generations, parse_wait)
from tinsnip_tasks.results import GroupResult, HostResult, recap_line

D = "/mnt/gazette-prod/service/web"
G = "/mnt/gazette-prod/service/.generations/web"


def gen_out(live="", *gens):
    """What the versions part of a service's fact prints (after ``@@versions``): the live
    stamp, then (n, stamp, next, saved) per generation."""
    return "\n".join(["@@versions", f"live={live}"] + [f"gen={n} stamp={s} next={x} saved={t}"
                                                        for n, s, x, t in gens])


# -- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value, seconds", [("", None), (None, None), ("0", 0), ("60", 60),
                                            (90, 90), ("3600", 3600)])
def test_wait_values(value, seconds):
    assert parse_wait(value) == seconds


@pytest.mark.parametrize("value", ["-1", "ten", "3601", "1.5", " 5", True])
def test_wait_refuses_what_is_not_seconds(value):
    with pytest.raises(InputError, match=r"--wait .* is not a number of seconds 0..3600"):
        parse_wait(value)


# -- generations ------------------------------------------------------------------------------
def test_generations_are_read_oldest_first_with_their_stamps():
    live, gens, now = parse_generations(gen_out("s3", (12, "s2", "s3", "2026-01-02T00:00:00Z"),
                                                (9, "s1", "s2", "")))
    assert live == "s3" and now == ""
    assert gens == [Generation(9, "s1", "s2", ""), Generation(12, "s2", "s3", "2026-01-02T00:00:00Z")]


def test_generations_fact_is_read_as_the_machine_user_with_its_daemon():
    cmd = SaveGeneration("gazette-prod", 10100, "/mnt/gazette-prod", D, G, "web", "s2",
                         images=("busybox:1.36",)).fact_command()
    assert cmd.startswith("sudo -u gazette-prod env DOCKER_HOST=unix:///run/user/10100/docker.sock "
                          "bash -c")
    assert "docker image inspect -f" in cmd and "busybox:1.36" in cmd


def _key(lines: str) -> str:
    return hashlib.sha256(lines.encode()).hexdigest()[:12]


def test_a_version_is_the_files_digest_and_a_key_of_the_image_lines(tmp_path):
    """The versions script run for real on a scratch tree: the stamp's image lines (in any
    order) are part of the version; a missing stamp is no version; ``now`` is the key of the
    tracked images as the daemon holds them (none here: ``-``)."""
    d, g = tmp_path / "web", tmp_path / ".generations"
    (d).mkdir()
    (d / ".tinsnip-deployed").write_text("files1\nimage b:2 sha256:bb\nimage a:1 sha256:aa\n"
                                         "service web a:1 sha256:aa\n")
    (g / "4" / "files").mkdir(parents=True)
    # a last line without its newline counts; an entry that is no number is no generation
    (g / "4" / "files" / ".tinsnip-deployed").write_text("files1\nimage a:1 sha256:00")
    (g / "4" / "next").write_text("files1+x\n")
    (g / "4" / "saved").write_text("2026-12-07T00:00:00Z")
    (g / "7" / "files").mkdir(parents=True)  # kept before any deploy stamp existed
    (g / "7x" / "files").mkdir(parents=True)
    out = subprocess.run(["bash", "-c", health.versions_script(str(d), str(g), ("a:1",))],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    live, gens, now = parse_generations(out)
    assert live == "files1+" + _key("image a:1 sha256:aa\nimage b:2 sha256:bb\n")
    assert len(gens) == 2
    assert gens[0] == Generation(4, "files1+" + _key("image a:1 sha256:00\n"), "files1+x",
                                 "2026-12-07T00:00:00Z")
    assert gens[1].stamp == ""
    assert now == _key("image a:1 -\n")
    empty = subprocess.run(["bash", "-c", health.versions_script(str(tmp_path / "none"), str(g))],
                           capture_output=True, text=True).stdout
    assert parse_generations(empty).live == "" and parse_generations(empty).now == _key("")


@pytest.mark.parametrize("stamp", [
    "files1\nimage b:2 sha256:bb\nimage a:1 sha256:aa\nservice web a:1 sha256:aa\n",
    "files1\nimage B:2 x \r\nimage a:1 sha256:aa",  # no last newline; a space, a CR kept
    "", "\nimage a:1 sha256:aa\n"], ids=["plain", "awkward", "empty", "no-first-line"])
def test_the_running_version_keyed_here_is_the_one_the_host_keys(tmp_path, stamp):
    """service.up's fact prints the stamp and the image lines, and the reader keys them:
    the same version and ``now`` as the host's own script gives for them."""
    d = tmp_path / "web"
    d.mkdir()
    (d / ".tinsnip-deployed").write_text(stamp)
    out = subprocess.run(["bash", "-c", health.versions_script(str(d), str(tmp_path / "g"),
                                                              ("b:2", "a:1"))],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    host = parse_generations(out)
    assert health.version_of(stamp) == host.live
    assert health.version_key("image b:2 -\nimage a:1 -\n") == host.now


def test_save_generation_reads_the_stamp_and_images_of_the_service_fact():
    fact = SaveGeneration("u", 1, "/m", D, G, "web", "new").parse(
        "@@stamp\nold\nimage a:1 sha256:aa\nhash web h\n@@ps\nweb running h\n@@images\n"
        "image a:1 sha256:bb\n@@versions\ngen=3 stamp=x next=y saved=z\n")
    assert fact.live == "old+" + _key("image a:1 sha256:aa\n")
    assert fact.now == _key("image a:1 sha256:bb\n") and fact.gens[0].number == 3
    assert fact.next("new") == "new+" + fact.now


K = hashlib.sha256(b"").hexdigest()[:12]  # the key of no image line


def service_out(live="", *gens):
    """What a service's fact prints for SaveGeneration: a stamp whose first line is ``live``
    (no image line), no tracked image, and the kept generations (n, version, next, saved): a
    version of a stamp without images is ``FIRST+K``."""
    return "\n".join(["@@stamp", *([live] if live else []), "@@ps", "@@images", "",
                      gen_out("", *gens)])


class TestSaveGeneration:
    save = SaveGeneration("gazette-prod", 10100, "/mnt/gazette-prod", D, G, "web", "new")

    def test_a_first_deploy_keeps_nothing(self):
        assert self.save.plan(service_out("")) == []

    def test_a_deploy_of_the_running_files_keeps_nothing(self):
        assert self.save.plan(service_out("new", (1, f"old+{K}", f"new+{K}", "t"))) == []

    def test_a_change_keeps_the_running_files_as_the_next_number(self):
        [cmd] = self.save.plan(service_out("cur", (4, "a", "b", "t"), (5, "b", f"cur+{K}", "t")))
        assert cmd.text.startswith("sudo -u gazette-prod env "
                                   "DOCKER_HOST=unix:///run/user/10100/docker.sock bash -c")
        script = cmd.text
        assert f"cp -R -P --preserve=mode,timestamps {D} {G}/.new-6/files" in script
        assert f"mv -T {G}/.new-6 {G}/6" in script
        assert "tinsnip-generation/web:6-" in script  # its images tagged, so prune keeps them
        assert f"echo new+{K} > " in script  # the version that replaces it
        assert "tail -n +4" in script  # the newest three stay
        assert "generation 6" in str(cmd)

    def test_a_first_generation_is_number_one(self):
        [cmd] = self.save.plan(service_out("cur"))
        assert f"mv -T {G}/.new-1 {G}/1" in cmd.text

    def test_the_running_files_kept_already_are_not_kept_twice(self):
        # an earlier deploy kept them, then stopped before compose up
        assert self.save.plan(service_out("cur", (3, f"cur+{K}", f"new+{K}", "t"))) == []
        [cmd] = self.save.plan(service_out("cur", (3, f"cur+{K}", "other", "t")))
        assert cmd.text.startswith("setpriv --reuid=10100")
        assert f"echo new+{K} > {G}/3/next" in cmd.text


class TestRollback:
    r = Rollback("gazette-prod", 10100, "/mnt/gazette-prod", D, G, "web")

    def test_no_generation_means_nothing_to_do(self):
        assert self.r.plan(gen_out("cur")) == []

    def test_the_newest_generation_comes_back_and_is_dropped(self):
        [cmd] = self.r.plan(gen_out("cur", (2, "a", "b", "t"), (3, "b", "cur", "t")))
        t = cmd.text
        assert f"[ -d {G}/3/files ]" in t
        assert f"done < {G}/3/images" in t  # images under the references they ran as
        assert t.index(f"cp -R -P --preserve=mode,timestamps {G}/3/files {D}.tinsnip-new") \
            < t.index(f"mv -T {D}.tinsnip-new {D}") < t.index("up -d --force-recreate --remove-orphans") \
            < t.index(f"rm -rf {G}/3")
        assert "source /mnt/gazette-prod/.machine/machine.env" in t  # the seed's compose pattern

    def test_an_interrupted_rollback_is_finished_not_repeated_further(self):
        # the files of generation 3 are back (same stamp) but it was not dropped yet
        [cmd] = self.r.plan(gen_out("b", (2, "a", "b", "t"), (3, "b", "cur", "t")))
        assert f"{G}/3/files" in cmd.text


def test_generation_tags_are_removed_with_the_service():
    tags = GenerationTags("gazette-prod", 10100, "web")
    assert tags.plan("") == []
    [cmd] = tags.plan("tinsnip-generation/web:3-abc\ntinsnip-generation/web:4-def\n")
    assert cmd.text.endswith("docker rmi tinsnip-generation/web:3-abc "
                             "tinsnip-generation/web:4-def >/dev/null")


# -- the gate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("container, problem", [
    (Container("a", "web", "running"), ""),
    (Container("a", "web", "running", "healthy"), ""),
    (Container("a", "web", "running", "starting"), "running, health starting"),
    (Container("a", "web", "running", "unhealthy"), "running, health unhealthy"),
    (Container("a", "job", "exited", "", 0), ""),
    (Container("a", "web", "exited", "", 3), "exited (exit 3)"),
    (Container("a", "web", "restarting"), "restarting"),
    (Container("a", "web", "created"), "created"),
])
def test_what_a_container_still_lacks(container, problem):
    assert container.problem == problem


GATE = Gate("gazette-prod", 10100, "/mnt/gazette-prod", D, "web", (("http", 10103),), 30)


def ps_line(name, state="running", health="", exit_code=0):
    return json.dumps({"Name": name, "Service": "web", "State": state, "Health": health,
                       "ExitCode": exit_code})


def test_the_poll_reads_containers_and_ports():
    out = "\n".join([ps_line("web-web-1", health="healthy"), "@@ports", "port 10103 closed"])
    state = GATE.parse(out)
    assert state.containers == [Container("web-web-1", "web", "running", "healthy", 0)]
    assert state.ports == {10103: False}
    assert state.problems(GATE.port_names) == [
        "port 10103 (http): no TCP connection on the host"]


def test_the_poll_command_asks_compose_without_orphans_and_probes_each_port():
    cmd = GATE.poll_command()
    assert "docker compose ps -a --orphans=false --format json" in cmd
    assert cmd.startswith("sudo -u gazette-prod bash -c")
    assert "/dev/tcp/127.0.0.1/$0" in cmd and " 10103 2>/dev/null" in cmd


def test_no_container_is_not_healthy():
    assert State().problems({}) == ["no container of the project exists"]


def test_the_diagnosis_shows_health_results_and_log_lines():
    health_json = json.dumps({"Status": "unhealthy", "FailingStreak": 4, "Log": [
        {"ExitCode": 1, "Output": "wget: server returned error: HTTP/1.1 404 Not Found\n"}] * 5})
    out = "\n".join(["@@container web-web-1", health_json, "@@log", "started", "serving",
                     "@@container web-db-1", "null", "@@log"])
    lines = parse_diagnosis(out)
    assert lines[0] == "  web-web-1: health unhealthy, 4 failing check(s) in a row; last:"
    assert lines[1:4] == ["    exit 1: wget: server returned error: HTTP/1.1 404 Not Found"] * 3
    assert lines[4:7] == ["  web-web-1: last log lines:", "    | started", "    | serving"]
    assert lines[7] == "  web-db-1: no healthcheck"


class FakeHost:
    """A host that answers each command by the first rule whose text is in it."""

    def __init__(self, rules):
        self.rules, self.ran = rules, []
        self.result = HostResult("homelab1")
        self.name = "homelab1"

    def execute(self, command, *, step, show="", secret=False):
        self.ran.append(show or command)
        for key, answer in self.rules:
            if key in command:
                if isinstance(answer, Exception):
                    raise answer
                return SimpleNamespace(stdout=answer() if callable(answer) else answer)
        raise AssertionError(f"unexpected command: {command[:200]}")


@pytest.fixture
def no_waiting(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(health, "clock", lambda: now[0])
    monkeypatch.setattr(health, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


UNHEALTHY = "\n".join([ps_line("web-web-1", health="unhealthy"), "@@ports", "port 10103 open"])
HEALTHY = "\n".join([ps_line("web-web-1", health="healthy"), "@@ports", "port 10103 open"])
DIAGNOSIS = "\n".join(["@@container web-web-1", json.dumps({"Status": "unhealthy", "Log": [
    {"ExitCode": 1, "Output": "wget: bad"}]}), "@@log", "serving on 8080"])


def gate_host(polls, gens):
    polls = iter(polls)
    return FakeHost([("compose ps", lambda: next(polls)), ("docker inspect", DIAGNOSIS),
                     ("live=", gens), ("compose stop", ""), ("--force-recreate", "")])


def up(h, failure=None):
    after_up(h, failure, gate=GATE, stamp="new", step="service.up", gens_dir=G)


def test_a_healthy_service_passes(no_waiting):
    h = gate_host([UNHEALTHY, HEALTHY], "")
    up(h)
    assert h.result.rolled_back == 0 and no_waiting[0] == 1.0


def test_an_unhealthy_version_is_rolled_back_to_the_generation_it_replaced(no_waiting):
    h = gate_host([UNHEALTHY] * 40 + [HEALTHY], gen_out("new", (7, "old", "new", "T")))
    with pytest.raises(HealthError) as e:
        up(h)
    text = str(e.value)
    assert text.splitlines()[0] == ("web was not healthy within 30 s; rolled back to generation 7 "
                                    "(saved T), which is healthy")
    assert "container web-web-1: running, health unhealthy" in text
    assert "exit 1: wget: bad" in text and "| serving on 8080" in text
    assert h.result.rolled_back == 1
    assert any("bring generation 7 of web back" in c for c in h.ran)
    assert no_waiting[0] >= 30


def test_a_version_that_replaced_nothing_is_left_stopped(no_waiting):
    # the newest generation was replaced by another deploy than this one
    h = gate_host([UNHEALTHY] * 40, gen_out("new", (7, "old", "other", "T")))
    with pytest.raises(HealthError, match="no earlier generation to go back to: left stopped"):
        up(h)
    assert h.result.rolled_back == 0
    assert any("compose stop web" in c for c in h.ran)
    assert not any("bring generation" in c for c in h.ran)


def test_a_failed_compose_up_is_rolled_back_too(no_waiting):
    failure = RemoteError("homelab1", "service.up", "compose up", 1, "Error: port is taken\n")
    h = gate_host([UNHEALTHY, HEALTHY], gen_out("new", (2, "old", "new", "T")))
    with pytest.raises(HealthError) as e:
        up(h, failure)
    assert str(e.value).startswith("docker compose up of web failed (exit 1); rolled back to "
                                   "generation 2")
    assert "| Error: port is taken" in str(e.value)
    assert h.result.rolled_back == 1


def test_a_failed_rollback_says_so_and_counts_nothing(no_waiting):
    h = FakeHost([("compose ps", UNHEALTHY), ("docker inspect", DIAGNOSIS),
                  ("live=", gen_out("new", (2, "old", "new", "T"))),
                  ("--force-recreate", RemoteError("homelab1", "service.up", "restore", 1,
                                                   "the image is gone"))])
    with pytest.raises(HealthError, match="bringing back generation 2 failed too"):
        up(h)
    assert h.result.rolled_back == 0


def test_wait_zero_turns_the_gate_off():
    h = FakeHost([])
    after_up(h, None, gate=Gate("u", 1, "/mnt/x", D, "web", wait=0), stamp="new",
             step="service.up", gens_dir=G)
    assert h.ran == []


# -- the recap --------------------------------------------------------------------------------
def test_rolled_back_is_in_the_recap_line_only_when_not_zero_and_always_in_json():
    r = HostResult("homelab1", commands=3, seconds=1.0)
    assert "rolled_back" not in recap_line(r)
    g = GroupResult(title="t")
    g["homelab1"] = r
    assert g.to_dict()["rolled_back"] == 0 and g.to_dict()["hosts"]["homelab1"]["rolled_back"] == 0
    r.rolled_back = 1
    assert recap_line(r).endswith(" rolled_back=1")
    assert g.to_dict()["rolled_back"] == 1


# -- settings through the inventory, service.yaml and the CLI ---------------------------------
def inventory(tmp_path, services, folder_meta=None):
    import yaml
    from tinsnip_tasks.core.inventory import load_inventory
    from tinsnip_tasks.core.render import catalog
    if folder_meta is not None:
        d = tmp_path / "web"
        d.mkdir()
        (d / "docker-compose.yml").write_text("services: {}\n")
        (d / "service.yaml").write_text(folder_meta)
    data = {"sheets": {"dynamicalsystem": {"nas": "ds412plus"}},
            "nas": {"ds412plus": {"host": "ds412plus"}},
            "machines": {"gazette": {"sheet": "dynamicalsystem", "host": "homelab1",
                                     "environments": ["prod"], "number": 1,
                                     "services": services}}}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path, catalog=catalog())


def target(inv, service, wait=None):
    from tinsnip_tasks.plans import Target
    return Target(inv, inv.smep("gazette", "prod"), service, wait)


def test_the_wait_comes_from_the_option_then_the_inventory_then_service_yaml(tmp_path):
    from tinsnip_tasks.plans.generations import wait_seconds
    inv = inventory(tmp_path, {"hello": {"http": 0},
                               "web": {"path": "web", "ports": {}, "wait": 0},
                               "other": {"path": "web", "ports": {}}}, "wait: 45\n")
    assert wait_seconds(target(inv, "hello")) == health.DEFAULT_WAIT
    assert wait_seconds(target(inv, "hello", 5)) == 5
    assert wait_seconds(target(inv, "web")) == 0  # the inventory's 0 beats service.yaml's 45
    assert wait_seconds(target(inv, "other")) == 45
    assert wait_seconds(target(inv, "other", 7)) == 7


@pytest.mark.parametrize("services, problem", [
    ({"hello": {"ports": {"http": 0}, "wait": 3601}}, "use an integer 0..3600"),
    ({"hello": {"ports": {"http": 0}, "wait": "soon"}}, "use an integer 0..3600"),
    ({"hello": {"http": 0, "wait": 30}}, "wait: goes in the long form"),
])
def test_a_bad_wait_in_the_inventory_is_refused(tmp_path, services, problem):
    from tinsnip_tasks.errors import InventoryError
    with pytest.raises(InventoryError, match=problem):
        inventory(tmp_path, services)


def test_a_bad_wait_in_service_yaml_is_refused(tmp_path):
    from tinsnip_tasks.errors import TemplateError
    from tinsnip_tasks.plans.catalog import service_entry
    inv = inventory(tmp_path, {"web": {"path": "web", "ports": {}}}, "wait: -5\n")
    with pytest.raises(TemplateError, match=r"service.yaml: wait: -5 is not a number of seconds"):
        service_entry(inv, "gazette", "web")


def test_site_up_hands_its_wait_to_every_service(tmp_path):
    from tinsnip_tasks.plans import site
    inv = inventory(tmp_path, {"hello": {"http": 0}})
    sel = site.select(inv, "gazette")
    steps = site.machine_steps(inv, sel, {("gazette", "prod"): target(inv, "")}, wait=9)
    [up_step] = [s for s in steps["homelab1"] if s.name == "service.up"]
    assert up_step.after.keywords["target"].wait == 9


@pytest.mark.parametrize("args, message", [
    (("service.deploy", "--machine", "gazette", "--env", "prod", "--service", "hello",
      "--wait", "soon"), "--wait 'soon' is not a number of seconds 0..3600"),
    (("site.up", "--wait", "99999"), "--wait '99999' is not a number of seconds"),
    (("service.rollback", "--machine", "gazette", "--env", "prod", "--service", "nothere"),
     "machine gazette does not run 'nothere'"),
], ids=["deploy-wait", "site-wait", "rollback-unknown-service"])
def test_bad_input_is_refused_before_any_host(tmp_path, args, message):
    from test_cli import UNREACHABLE, run
    path = tmp_path / "inventory.yaml"
    path.write_text(UNREACHABLE)
    p = run(*args, inventory=path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr
    assert "cannot connect" not in p.stderr and "unreachable" not in p.stdout + p.stderr
