"""Attackers with an account on a machine host plant links at every path tinsnip writes; re-runs
of every task change nothing outside those paths and no owner.

The attacker on homelab1 is the machine user `gazette-test` itself: its home and its NFS mount
are its own. `mallory`, an unprivileged local user, no longer gets past the gate in front of the
mount (on the mount itself every local user would act as the export's UID through all_squash).
Root files on homelab1 (the gates' folder included) and the NAS are fingerprinted (type, owner,
group, mode, sha256) before and after.
"""
import shlex
import urllib.request

import pytest

GT = ("--machine", "gazette", "--env", "test")
MP = "/mnt/gazette-test"
HOME = "/home/gazette-test"
SVC = f"{MP}/service/hello"
ROOT_TREES = "/etc /root /usr/local /opt /var/lib/tinsnip-nfs /var/lib/tinsnip"
FINGERPRINT = (f"for d in {ROOT_TREES}; do [ -e $d ] && find $d -xdev -printf '%p %y %U %G %m\\n'; "
               f"done | sort; for d in {ROOT_TREES}; do [ -e $d ] && find $d -xdev -type f "
               "-exec sha256sum {} +; done | sort; stat -c '%n %F %u %g %a' /*")
PWNED = "/etc/pwned*"


def as_(lab, user, script, **kw):
    return lab.run("homelab1", f"cd / && sudo -u {user} sh -c {shlex.quote(script)}", **kw)


def tasks(cli, check=True):
    return [cli.inv(*args, check=check) for args in (
        ("nas.setup", *GT), ("machine.setup", *GT), ("service.deploy", *GT, "--service", "hello"))]


def fingerprints(lab):
    return {h: lab.run(h, FINGERPRINT).stdout for h in ("homelab1", "ds412plus")}


def no_pwned(lab):
    for h in ("homelab1", "ds412plus"):
        assert lab.run(h, f"ls -d {PWNED} 2>/dev/null", warn=True).stdout == ""


@pytest.fixture(scope="module")
def deployed(lab, e2e_cli):
    tasks(e2e_cli)
    lab.run("homelab1", "id mallory >/dev/null 2>&1 || useradd -m -s /bin/sh mallory")
    return e2e_cli


def test_the_reviewers_exploit_fails(lab, deployed):
    """Issue 11's reproduction: the machine user links the fixed temporary name to /etc/pwned
    and removes machine.env; root's machine.setup used to create /etc/pwned with its content."""
    as_(lab, "gazette-test", f"ln -sfn /etc/pwned {MP}/.machine/.machine.env.tinsnip-new && "
                             f"rm {MP}/.machine/machine.env")
    p = deployed.inv("machine.setup", *GT)
    assert p.summaries["homelab1"]["failed"] == 0, p.stdout
    no_pwned(lab)
    st = lab.run("homelab1", f"stat -c '%F %u %a' {MP}/.machine/machine.env").stdout.split()
    assert st == ["regular", "file", "10110", "640"]
    assert "TIN_SERVICE_UID=10110" in lab.read("homelab1", f"{MP}/.machine/machine.env")
    assert lab.run("homelab1", f"readlink {MP}/.machine/.machine.env.tinsnip-new").stdout.strip() \
        == "/etc/pwned"  # untouched: tinsnip never opens a name it did not just create


def test_links_at_every_written_path_change_nothing_outside(lab, deployed):
    before = fingerprints(lab)
    plant = []
    for d, name in ((f"{MP}/.machine", "machine.env"), (SVC, "docker-compose.yml"),
                    (SVC, ".env"), (SVC, ".tinsnip-deployed")):
        # every temporary name an attacker could guess, then the file itself gone
        for tmp in (f".{name}.tinsnip-new", f".{name}.tinsnip-old", f".{name}.XXXXXXXXXX",
                    f".{name}.tmp", f"{name}.tinsnip-lock"):
            plant.append(f"ln -sfn /etc/pwned-{name.strip('.')}-{tmp.strip('.')} {d}/{tmp}")
        plant.append(f"rm -f {d}/{name}")
    # the stamp itself a link to a root path: root used to `echo > .tinsnip-deployed`
    plant.append(f"ln -sfn /etc/pwned-stamp {SVC}/.tinsnip-deployed")
    assert not as_(lab, "mallory", plant[0], warn=True).ok  # the gate: mallory cannot reach it
    as_(lab, "gazette-test", " && ".join(plant))
    # the machine user repoints its XDG link at /etc
    as_(lab, "gazette-test", f"ln -sfn /etc {HOME}/.local/share/dynamicalsystem/@gazette")
    runs = tasks(deployed)
    assert all(s["failed"] == 0 for p in runs for s in p.summaries.values())
    no_pwned(lab)
    assert fingerprints(lab) == before
    out = lab.run("homelab1", f"stat -c '%n %F %u' {MP}/.machine/machine.env {SVC}/.env "
                              f"{SVC}/docker-compose.yml {SVC}/.tinsnip-deployed").stdout
    assert [l.split(" ", 1)[1] for l in out.splitlines()] == ["regular file 10110"] * 4
    assert lab.run("homelab1", f"readlink {HOME}/.local/share/dynamicalsystem/@gazette"
                   ).stdout.strip() == f"{MP}/data"
    body = urllib.request.urlopen(f"http://{lab.ip('homelab1')}:10110/", timeout=10).read()
    assert b"hello from gazette-test" in body


def test_a_link_in_place_of_a_nas_folder_is_refused_there(lab, deployed):
    """Through the mount, the machine user swaps `config` for a link to /etc: on the NAS the link
    is the server's own, so root there would chown /etc if it followed it."""
    before = fingerprints(lab)
    as_(lab, "gazette-test", f"rm -rf {MP}/config && ln -s /etc {MP}/config")
    try:
        p = deployed.inv("nas.setup", *GT, check=False)
        assert p.returncode == 1 and "symbolic link, not a folder" in p.stdout
        assert fingerprints(lab) == before
    finally:
        as_(lab, "gazette-test", f"rm -f {MP}/config")
        tasks(deployed)


def test_a_linked_daemon_log_is_never_opened_by_root(lab, deployed):
    """The machine user links its dockerd.log to a root path and stops its daemon: the restart
    opens the log as the user (and fails, which is the user's own doing), never as root."""
    log = f"{HOME}/.local/state/tinsnip/dockerd.log"
    before = fingerprints(lab)
    as_(lab, "gazette-test", f"ln -sfn /etc/pwned-log {log}")
    lab.run("homelab1", "pkill -u gazette-test; for i in $(seq 50); do pgrep -u gazette-test "
                        ">/dev/null || break; sleep 0.1; done; rm -rf /run/user/10110")
    try:
        p = deployed.inv("machine.setup", *GT, check=False)
        assert p.returncode == 1 and "machine.docker" in p.stdout
        no_pwned(lab)
        assert fingerprints(lab) == before
    finally:
        as_(lab, "gazette-test", f"rm -f {log}")
        tasks(deployed)
