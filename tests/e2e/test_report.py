"""site.report from a lab run, loaded in a real browser: headless Chromium (Debian's package)
renders the page; the DOM it builds shows every machine-environment, the one broken on purpose
marked failed, and nothing else; a screenshot is kept in ``.lab/artefacts/``."""
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest
import yaml

from tinsnip_lab import registry
from tinsnip_lab.settings import lab_dir

from .conftest import Cli

ENVS = {"north-prod": "homelab1", "north-test": "homelab1", "south-prod": "homelab2",
        "east-dev": "homelab2"}
BROKEN = "south-prod"
SOUTH = "sudo -u south-prod env DOCKER_HOST=unix:///run/user/{uid}/docker.sock docker"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium(*args):
    """Run Debian's chromium headless with a profile of its own; returns the process."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: run make install (.ci/test-deps.sh installs it)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180)


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    """A sheet of its own (S=6): north (prod, test) on homelab1 with a forward, south (prod) and
    east (dev, no service) on homelab2; converged."""
    root = tmp_path_factory.mktemp("report")
    inventory = {
        "sheets": {"reportsheet": {"nas": "ds412plus", "volume": "/volume1", "number": 6,
                                   "docker": registry.INVENTORY_DOCKER}},
        "nas": {"ds412plus": {"host": "ds412plus"}},
        "machines": {
            "north": {"sheet": "reportsheet", "host": "homelab1", "environments": ["prod", "test"],
                      "number": 11, "services": {"hello": {"ports": {"http": 0},
                                                           "forward": {8088: {"to": "http",
                                                                              "env": "prod"}}}}},
            "south": {"sheet": "reportsheet", "host": "homelab2", "environments": ["prod"],
                      "number": 12, "services": {"hello": {"http": 0}}},
            "east": {"sheet": "reportsheet", "host": "homelab2", "environments": ["dev"],
                     "number": 13},
        },
    }
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    cli = Cli(root / "inventory.yaml")
    cli.inv("site.up")
    return cli, root


def test_the_report_loads_in_chromium_with_every_env_and_the_failure_marked(lab, site):
    cli, root = site
    uid = 60000 + 12 * 100
    lab.run("homelab2", f"{SOUTH.format(uid=uid)} stop -t 0 hello-hello-1")
    try:
        page, data = root / "site.html", root / "site.json"
        p = cli.inv("site.report", "--html", str(page), "--json", str(data), check=False)
    finally:
        cli.inv("site.up", "--limit", "south:prod")
    assert p.returncode == 1, p.stdout + p.stderr  # the broken item fails the run, as site.status
    assert f"wrote {page}" in p.stdout

    report = json.loads(data.read_text())
    envs = {e["name"]: e for h in report["hosts"] for e in h["envs"]}
    assert set(envs) == set(ENVS)
    assert envs["north-prod"]["uid"] == 61100 and envs["north-prod"]["ports"] == [61100, 61109]
    hello = next(s for s in envs["north-prod"]["services"] if s["name"] == "hello")
    assert hello["deployed"] and hello["containers"][0]["image_id"].startswith("sha256:")
    assert hello["digest"].startswith("sha256:")  # pulled through the lab registry's mirror
    homelab1 = next(h for h in report["hosts"] if h["host"] == "homelab1")
    assert {"port": 8088, "to": 61100, "owner": "north-prod:hello"} in homelab1["forwards"]

    dump = chromium("--dump-dom", page.as_uri())
    assert dump.returncode == 0 and "</html>" in dump.stdout, dump.stderr[-2000:]
    dom = Dom()
    dom.feed(dump.stdout)
    sections = {a["data-env"]: a["data-state"] for t, a in dom.elements
                if t == "section" and "data-env" in a}
    assert sections == {e: ("failed" if e == BROKEN else "ok") for e in ENVS}, sections
    failed = {(a["data-env"], a["data-item"]) for t, a in dom.elements
              if t == "li" and a.get("data-status") == "failed"}
    # a stopped container has no environment to read and no path to write
    assert failed == {(BROKEN, "environment"), (BROKEN, "writable")}, failed
    assert ("td", {"class": "digest"}) in dom.elements  # the digest column is on the page
    assert hello["digest"][:19] in dump.stdout
    cells = {a["data-env"]: a["class"] for t, a in dom.elements if t == "td" and "data-env" in a}
    assert cells[BROKEN] == "failed" and cells["north-test"] == "ok"
    assert cells["east-prod"] == "free" and cells["station-prod"] == "station"
    assert {a.get("data-host") for t, a in dom.elements if t == "section"} >= {"homelab1",
                                                                               "homelab2"}

    artefacts = lab_dir() / "artefacts"
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / "site-report.png"
    shot.unlink(missing_ok=True)
    taken = chromium("--window-size=1400,2400", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0 and shot.stat().st_size > 10000, taken.stderr[-2000:]
    shutil.copy(page, artefacts / "site-report.html")
    print(f"\nsite report screenshot: {shot}")
