"""Invoke's and Fabric's conventions through the real `tinsnip`, `inv` and `fab` against the lab:
every spelling of a dry run changes nothing; `fab -H user@host:port`, `-i`, `-S`,
`fabric.yaml` and `~/.ssh/config` reach a second sshd on homelab2 (port 2222) as a non-root
user with sudo and a key of its own; every ProxyJump hop's host key is checked.

The machine `opsbox` (pinned number 50) exists only in this module's inventory, so its user
`opsbox-dev` (UID 15020) on homelab2 is touched by nothing else.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import tinsnip_lab
from tinsnip_lab import sshkeys
from tinsnip_tasks import connect as cx
from tinsnip_tasks.errors import UnreachableError

from .conftest import RECAP_VARS

ROOT = Path(__file__).resolve().parents[2]
PORT = 2222
USER_ARGS = ("machine.user", "--machine", "opsbox", "--env", "dev")
INVENTORY = """
sheets:
  dynamicalsystem: {nas: ds412plus, volume: /volume1}
nas:
  ds412plus: {host: ds412plus}
machines:
  opsbox: {sheet: dynamicalsystem, host: homelab2, environments: [dev], number: 50}
"""
SSHD_LOG = "/tmp/sshd-2222.log"
STOP_SSHD = f"if [ -f /run/sshd-{PORT}.pid ]; then kill $(cat /run/sshd-{PORT}.pid); fi"


@pytest.fixture(scope="module")
def ops(lab, tmp_path_factory):
    """User `ops` (sudo, own key) on homelab2, reachable on a second sshd at port 2222."""
    d = tmp_path_factory.mktemp("ops")
    key = d / "id_ops"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (d / "id_ops.pub").read_text().strip()
    lab.run("homelab2", "id ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops; "
                        "echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops; "
                        "install -d -o ops -g ops -m 700 ~ops/.ssh; "
                        f"echo '{pub}' > ~ops/.ssh/authorized_keys; "
                        "chown ops:ops ~ops/.ssh/authorized_keys; "
                        f"{STOP_SSHD}; rm -f {SSHD_LOG}; "
                        f"/usr/sbin/sshd -p {PORT} -E {SSHD_LOG} -o PidFile=/run/sshd-{PORT}.pid")
    ip = lab.ip("homelab2")
    known = d / "known_hosts"
    known.write_text(f"[{ip}]:{PORT} {sshkeys.public_host_key('homelab2')}\n"
                     + tinsnip_lab.known_hosts_path().read_text())
    inventory = d / "inventory.yaml"
    inventory.write_text(INVENTORY)
    yield {"key": key, "known": known, "ip": ip, "dir": d, "inventory": inventory}
    lab.run("homelab2", f"{STOP_SSHD}; userdel opsbox-dev", warn=True)


def accepted(lab):
    """How many logins the second sshd accepted for ops."""
    out = lab.run("homelab2", f"grep -c 'Accepted publickey for ops' {SSHD_LOG} || true").stdout
    return int(out.strip() or 0)


def has_user(lab):
    return lab.run("homelab2", "id -u opsbox-dev", warn=True).stdout.strip() == "15020"


def tool(name, ops, *args, env=None, home=None, cwd=None):
    """Run `tinsnip`, `inv` or `fab` as a person would, with the lab's settings for the
    checkout's programs (TINSNIP_LAB=1) and given ones for `tinsnip`."""
    argv = {"tinsnip": [sys.executable, "-m", "tinsnip_tasks"],
            "inv": [sys.executable, "-m", "invoke", "--search-root", str(ROOT)],
            "fab": [sys.executable, "-m", "fabric", "--search-root", str(ROOT)]}[name]
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("INVOKE_", "FABRIC_")) and k != "TINSNIP_INVENTORY"}
    full.update(TINSNIP_LAB="1", TINSNIP_INVENTORY=str(ops["inventory"]),
                PYTHONPATH=str(ROOT))
    if name == "tinsnip":  # the installed program knows nothing of the lab: settings say it
        full.update(TINSNIP_SSH_CONFIG=str(tinsnip_lab.ssh_config_path()),
                    TINSNIP_ALLOWED_HOSTS=",".join(tinsnip_lab.LAB_HOSTS.values()))
    if home:
        full["HOME"] = str(home)
    full.update(env or {})
    with tempfile.TemporaryDirectory() as tmp:
        recap = Path(tmp) / "recap.json"
        full.update({v: str(recap) for v in RECAP_VARS})
        p = subprocess.run([*argv, *args], cwd=cwd or ops["dir"], env=full, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=300)
        hosts = json.loads(recap.read_text())["hosts"] if recap.exists() else {}
    p.summaries = {h: r["changed"] if r["failed"] == 0 else "failed" for h, r in hosts.items()}
    return p


def fresh_home(ops, name):
    home = ops["dir"] / name
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    return home


@pytest.mark.parametrize("name, args, env, files", [
    ("inv", USER_ARGS + ("--dry",), {}, {}),
    ("inv", ("--dry",) + USER_ARGS, {}, {}),
    ("inv", ("-R",) + USER_ARGS, {}, {}),
    ("inv", USER_ARGS, {"INVOKE_RUN_DRY": "1"}, {}),
    ("inv", USER_ARGS, {}, {".invoke.yaml": "run:\n  dry: true\n"}),
    ("tinsnip", USER_ARGS + ("--dry",), {}, {}),
    ("tinsnip", ("--dry",) + USER_ARGS, {}, {}),
    ("tinsnip", USER_ARGS, {"TINSNIP_RUN_DRY": "1"}, {}),
    ("tinsnip", USER_ARGS, {}, {"tinsnip.yaml": "run:\n  dry: true\n"}),
    ("fab", ("-H", "homelab2", "--dry") + USER_ARGS, {}, {}),
    ("fab", ("-H", "homelab2") + USER_ARGS, {"FABRIC_RUN_DRY": "1"}, {}),
], ids=["inv-task-flag", "inv--dry", "inv-R", "INVOKE_RUN_DRY", "invoke.yaml", "tinsnip-task-flag",
        "tinsnip--dry", "TINSNIP_RUN_DRY", "tinsnip.yaml", "fab--dry", "FABRIC_RUN_DRY"])
def test_no_spelling_of_dry_changes_anything(lab, ops, tmp_path, name, args, env, files):
    lab.run("homelab2", "userdel opsbox-dev", warn=True)
    home = fresh_home(ops, "home-dry")
    cwd = tmp_path
    for fname, text in files.items():
        (home / fname if fname.startswith(".") else cwd / fname).write_text(text)
    p = tool(name, ops, *args, env=env, home=home, cwd=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "dry run: nothing is changed" in p.stdout
    assert "machine.user" in p.stdout and "would change" in p.stdout, p.stdout
    assert not has_user(lab)


def test_a_real_run_then_creates_the_user(lab, ops):
    lab.run("homelab2", "userdel opsbox-dev", warn=True)
    p = tool("inv", ops, *USER_ARGS)
    assert p.returncode == 0 and p.summaries["homelab2"] == 1, p.stdout + p.stderr
    assert has_user(lab)


def test_fab_host_keeps_user_and_port_and_takes_the_key(lab, ops):
    """Exit 3 (unreachable) without the key; with -i the login as ops on port 2222 works."""
    target = f"ops@homelab2:{PORT}"
    env = {"TINSNIP_KNOWN_HOSTS": str(ops["known"])}
    without_key = tool("fab", ops, "-H", target, *USER_ARGS, env=env)
    assert without_key.returncode == 3, without_key.stdout + without_key.stderr
    assert "cannot connect over SSH" in without_key.stdout + without_key.stderr
    before = accepted(lab)
    p = tool("fab", ops, "-H", target, "-i", str(ops["key"]), *USER_ARGS, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.summaries[target] in (0, 1) and has_user(lab), p.stdout
    assert accepted(lab) > before  # reached port 2222 as ops (root may not log in as ops)


def _opsbox_block(ops, name="opsbox2"):
    """An SSH config reaching homelab2 as ops on port 2222, and the NAS as the lab does."""
    return (f"Host {name}\n    HostName {ops['ip']}\n    Port {PORT}\n    User ops\n"
            f"    IdentityFile {ops['key']}\n    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {ops['known']}\n\n" + _nas_block(ops['known']))


def _nas_block(known_hosts):
    return (f"Host ds412plus\n    HostName {tinsnip_lab.LAB_HOSTS['ds412plus']}\n"
            f"    User root\n    IdentityFile {sshkeys.client_key_path()}\n"
            f"    UserKnownHostsFile {known_hosts}\n")


def test_fab_ssh_config_flag(lab, ops):
    config = ops["dir"] / "ssh_config_S"
    config.write_text(_opsbox_block(ops))
    before = accepted(lab)
    p = tool("fab", ops, "-S", str(config), "-H", "opsbox2", *USER_ARGS)
    assert p.summaries["opsbox2"] in (0, 1) and has_user(lab), p.stdout + p.stderr
    assert accepted(lab) > before


def test_fab_reads_the_users_ssh_config(lab, ops):
    home = fresh_home(ops, "home-sshconfig")
    (home / ".ssh" / "config").write_text(_opsbox_block(ops))
    before = accepted(lab)
    # the lab's own SSH config would win over ~/.ssh/config: unset it for this run
    p = tool("fab", ops, "-H", "opsbox2", *USER_ARGS, home=home, env={"TINSNIP_SSH_CONFIG": ""})
    assert p.summaries["opsbox2"] in (0, 1) and has_user(lab), p.stdout + p.stderr
    assert accepted(lab) > before


def test_fab_reads_fabric_yaml(lab, ops):
    """fabric.yaml names the SSH config file (ssh_config_path) and the key (connect_kwargs)."""
    home = fresh_home(ops, "home-fabric")
    config = ops["dir"] / "ssh_config_fabric_yaml"
    config.write_text(_opsbox_block(ops).replace(f"    IdentityFile {ops['key']}\n", "", 1))
    (home / ".fabric.yaml").write_text(
        f"ssh_config_path: {config}\nconnect_kwargs:\n  key_filename: [{ops['key']}]\n")
    before = accepted(lab)
    p = tool("fab", ops, "-H", "opsbox2", *USER_ARGS, home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.summaries["opsbox2"] in (0, 1) and has_user(lab), p.stdout
    assert accepted(lab) > before


def _jump_config(ops, known_hosts):
    key = sshkeys.client_key_path()
    return (f"Host jumped\n    HostName {ops['ip']}\n    User root\n    IdentityFile {key}\n"
            f"    ProxyJump ds412plus\n    UserKnownHostsFile {known_hosts}\n\n"
            + _nas_block(known_hosts))


def test_every_proxyjump_hop_has_its_host_key_checked(lab, ops):
    """homelab2 through ds412plus: refused while ds412plus's key is unknown, then reached."""
    partial = ops["dir"] / "known_without_jump_host"
    partial.write_text(f"{ops['ip']} {sshkeys.public_host_key('homelab2')}\n")
    config = ops["dir"] / "ssh_config_jump"
    config.write_text(_jump_config(ops, partial))
    profile = cx.SshProfile(ssh_config=str(config))
    with pytest.raises(UnreachableError, match="not found in known_hosts"):
        cx.connect("jumped", profile)
    p = tool("fab", ops, "-S", str(config), "-H", "jumped", *USER_ARGS)
    assert p.returncode == 3 and "not found in known_hosts" in p.stdout + p.stderr

    config.write_text(_jump_config(ops, tinsnip_lab.known_hosts_path()))
    conn = cx.connect("jumped", profile)
    try:
        assert conn.run("hostname", hide=True, in_stream=False).stdout.strip() == "homelab2"
        peer = conn.run("echo $SSH_CONNECTION", hide=True, in_stream=False).stdout.split()[0]
        assert peer == tinsnip_lab.LAB_HOSTS["ds412plus"]  # it came through the jump host
    finally:
        conn.close()
    p = tool("fab", ops, "-S", str(config), "-H", "jumped", *USER_ARGS)
    assert p.summaries["jumped"] in (0, 1) and has_user(lab), p.stdout + p.stderr
