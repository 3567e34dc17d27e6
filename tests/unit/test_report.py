"""The site report made from result data: what the checklist facts say, each sheet's number
space, failures marked, every value escaped, nothing from outside the page."""
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.plans import report, site, status
from tinsnip_tasks.results import GroupResult, HostResult, StepResult

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = {"gazette": 1, "lldap": 2, "gateway": 3}
EVIL = "<img src=x onerror=alert(1)>&\"'"


def facts(smep, project="hello", health="healthy"):
    """What the checklist script prints for a machine-environment running one container."""
    u = smep.uid
    return status.parse("\n".join([
        "@daemon 0 20.10", f"@compose\t{project}\t0\t", f"@deployed\t{project}\t1765053600",
        "@write user:data 0", f"@container /{project}-web-1 running 0",
        f"@image /{project}-web-1 tinsnip/busybox:1.35 sha256:{'ab' * 32} {health} "
        f"2026-12-06T20:40:01.5Z {project}",
        f"@env /{project}-web-1 {u} {u}", f"@port /{project}-web-1 {u}", f"@listen {u}",
        "@mount nas:/v nfs rw,nosuid,nodev", f"@gate 0_{u}_710_directory",
        f"@link /var/lib/tinsnip/{smep.user}/nfs", "@outsider closed",
        f"@dockerhost unix:///run/user/{u}/docker.sock"]))


def results(inv, broken=(), project="hello", detail_extra=""):
    """A GroupResult as site.status records it (the way status.check notes items)."""
    g = GroupResult(title="site.report")
    envs = []
    titles = dict(status.ITEMS)
    for m, e in site.select(inv).envs:
        smep = make_smep("dynamicalsystem", m, e, NUMBERS[m])
        envs.append(report.Env(m, e, smep))
        host = inv.machine(m).host
        r = g.setdefault(host, HostResult(host))
        found = facts(smep, project)
        for item, ok, detail in status.evaluate(found, smep):
            if (smep.user, item) in broken:
                ok, detail = False, "no answer" + detail_extra
            r.steps.append(StepResult(f"status.{item}", "ok" if ok else "failed", smep.user,
                                      f"{titles[item]}: {detail}",
                                      data=status.containers(found) if item == "restarting" else {}))
    for h, r in g.items():
        r.steps.append(StepResult("status.forwards", "ok", "", "forwards",
                                  data={"forwards": [{"port": 80, "to": 10100,
                                                      "owner": "gazette-prod:hello"}]}))
    return envs, g


@pytest.fixture
def inv():
    return load_inventory(ROOT / "inventory.yaml", catalog=catalog())


def test_the_data_holds_numbers_services_checklist_and_forwards(inv):
    envs, g = results(inv, broken={("lldap-prod", "daemon")})
    data = report.build(inv, envs, g, now=0)
    by_env = {e["name"]: e for h in data["hosts"] for e in h["envs"]}
    assert sorted(by_env) == ["gateway-prod", "gazette-prod", "gazette-test", "lldap-prod"]
    gp = by_env["gazette-prod"]
    assert (gp["uid"], gp["ports"], gp["state"]) == (10100, [10100, 10109], "ok")
    hello = next(s for s in gp["services"] if s["name"] == "hello")
    assert hello["deployed"] == "2025-12-06 20:40:00 UTC" and hello["health"] == "healthy"
    assert hello["containers"][0]["image_id"] == "sha256:" + "ab" * 32
    assert hello["containers"][0]["started"] == "2026-12-06 20:40:01 UTC"
    assert next(s for s in gp["services"] if s["name"] == "gazette")["state"] == "not deployed"
    lp = by_env["lldap-prod"]
    assert lp["state"] == "failed" and lp["failed"] == 1
    assert [i["item"] for i in lp["checklist"] if i["status"] == "failed"] == ["daemon"]
    assert data["summary"]["failed_items"] == 1 and data["exit_code"] == 1
    homelab1 = next(h for h in data["hosts"] if h["host"] == "homelab1")
    assert homelab1["forwards"] == [{"port": 80, "to": 10100, "owner": "gazette-prod:hello"}]
    json.dumps(data)  # the --json file


def test_the_number_space_marks_taken_free_failed_and_the_station(inv):
    envs, g = results(inv, broken={("lldap-prod", "daemon")})
    sheet = report.build(inv, envs, g)["sheets"][0]
    rows = {r["machine"]: {c["env"]: c for c in r["cells"]} for r in sheet["rows"]}
    assert [r["number"] for r in sheet["rows"]] == [0, 1, 2, 3]
    assert rows["station"]["prod"]["state"] == "station" and rows["station"]["test"]["taken"]
    assert rows["gazette"]["test"]["state"] == "ok" and rows["gazette"]["test"]["uid"] == 10110
    assert rows["lldap"]["prod"]["state"] == "failed"
    assert not rows["lldap"]["test"]["taken"] and rows["lldap"]["test"]["state"] == "free"
    assert sheet["used"] == "00..03" and sheet["free"] == "04..99" and sheet["free_count"] == 96


class Page(HTMLParser):
    """Elements with their attributes, and every URL-bearing attribute."""

    def __init__(self):
        super().__init__()
        self.elements, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_the_page_marks_failures_and_escapes_every_value(inv):
    envs, g = results(inv, broken={("lldap-prod", "daemon")}, detail_extra=EVIL)
    g["homelab2"].error = EVIL
    page = report.html(report.build(inv, envs, g))
    p = Page()
    p.feed(page)
    tags = {t for t, _ in p.elements}
    assert "img" not in tags and "script" not in tags  # the markup in the values stayed text
    assert EVIL in "".join(p.text)
    envs_marked = {a["data-env"]: a["data-state"] for t, a in p.elements
                   if t == "section" and "data-state" in a}
    assert envs_marked == {"gazette-prod": "ok", "gazette-test": "ok", "lldap-prod": "failed",
                           "gateway-prod": "ok"}
    failed = [a["data-item"] for t, a in p.elements if t == "li" and a.get("data-status") == "failed"]
    assert failed == ["daemon"]


def test_the_page_fetches_nothing(inv):
    envs, g = results(inv)
    page = report.html(report.build(inv, envs, g))
    p = Page()
    p.feed(page)
    for tag, attrs in p.elements:
        assert not {"src", "href", "srcset", "action"} & set(attrs), (tag, attrs)
        assert tag not in ("script", "link", "iframe", "object", "embed")
    assert not re.search(r"url\(|@import|https?://", page.split("<body>")[0])


@pytest.mark.parametrize("args, message", [
    ((), "say where to write the report"),
    (("--html", "/nonexistent/dir/r.html"), "its folder does not exist"),
])
def test_the_task_refuses_before_any_host(tmp_path, args, message):
    import os
    import subprocess
    import sys

    (tmp_path / "inventory.yaml").write_text((ROOT / "inventory.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINSNIP_", "INVOKE_"))}
    p = subprocess.run([sys.executable, "-m", "tinsnip_tasks", "site.report", *args],
                       cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr, p.stdout + p.stderr
    assert "homelab" not in p.stdout


def test_an_unreachable_host_and_an_env_without_numbers_are_shown_unchecked(inv):
    envs, g = results(inv)
    g["homelab2"] = HostResult("homelab2", [StepResult("status", "unchecked", "", "lldap-prod")],
                               unreachable="homelab2: connection refused")
    envs = [e if e.machine != "gateway" else report.Env("gateway", "prod", None) for e in envs]
    g["homelab3"].steps = [StepResult("site", "skipped", "", "gateway-prod: its NAS failed")]
    data = report.build(inv, envs, g)
    by_env = {e["name"]: e for h in data["hosts"] for e in h["envs"]}
    assert by_env["lldap-prod"]["state"] == "unchecked"
    assert by_env["gateway-prod"]["state"] == "skipped" and by_env["gateway-prod"]["uid"] is None
    assert data["summary"]["unreachable"] == ["homelab2"] and data["exit_code"] == 3
    cells = {(r["machine"], c["env"]): c["state"] for r in data["sheets"][0]["rows"]
             for c in r["cells"]}
    assert cells[("lldap", "prod")] == "unchecked"
    page = report.html(data)
    assert 'data-env="lldap-prod" data-state="unchecked"' in page
    assert "unreachable: homelab2" in page


def test_the_digest_each_service_runs_and_a_newer_one_come_from_the_image_lines(inv):
    envs, g = results(inv)
    running, newer = "sha256:" + "11" * 32, "sha256:" + "22" * 32
    found = status.parse_images(
        f"@digest hello web busybox:1.36 sha256:{'ab' * 32} busybox@{running}\n"
        f'@registry hello web {{"Descriptor": {{"digest": "{newer}"}}}}\n')
    g["homelab1"].steps.append(StepResult("status.image", "ok", "gazette-prod", "image: ...",
                                          data=status.image_data(found)))
    data = report.build(inv, envs, g, now=0)
    gp = next(e for h in data["hosts"] for e in h["envs"] if e["name"] == "gazette-prod")
    hello = next(s for s in gp["services"] if s["name"] == "hello")
    assert hello["digest"] == running and hello["newer"] == newer
    assert hello["containers"][0]["digest"] == running
    gt = next(e for h in data["hosts"] for e in h["envs"] if e["name"] == "gazette-test")
    assert next(s for s in gt["services"] if s["name"] == "hello")["digest"] == ""
    page = report.html(data)
    assert running[:19] in page and "newer available" in page
