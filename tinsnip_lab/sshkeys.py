"""SSH material for the lab: the client key, per-host host keys, ssh_config and known_hosts.

Host keys are generated once per host and kept under ``.lab/hostkeys/<host>/``, so the
known_hosts file stays valid across restarts of the lab.
"""

import os
import subprocess

from tinsnip_lab.errors import LabError
from tinsnip_lab import settings

HOST_KEY = "ssh_host_ed25519_key"


def client_key_path():
    """Return the path of the private key that logs in to the lab hosts as root."""
    return settings.lab_dir() / "id_ed25519"


def host_key_dir(host):
    """Return the directory holding ``host``'s SSH host key pair."""
    return settings.lab_dir() / "hostkeys" / host


def _keygen(path, comment):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return False
    for stale in (path, path.with_name(path.name + ".pub")):
        if stale.exists():
            stale.unlink()
    proc = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"ssh-keygen failed for {path}: {proc.stderr.strip()}")
    return True


def _write(path, text, mode=0o644):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_keys():
    """Create the client key and every host key that does not exist yet.

    :returns: the names of the keys created (empty when all existed).
    """
    lab = settings.lab_dir()
    lab.mkdir(parents=True, exist_ok=True)
    lab.chmod(0o700)
    made = []
    if _keygen(client_key_path(), "tinsnip-lab"):
        made.append("client")
    for host in settings.LAB_HOSTS:
        if _keygen(host_key_dir(host) / HOST_KEY, f"root@{host}"):
            made.append(host)
    return made


def public_client_key():
    """Return the client public key line."""
    return client_key_path().with_name("id_ed25519.pub").read_text().strip()


def public_host_key(host):
    """Return ``host``'s public host key as ``type base64`` (no comment)."""
    fields = (host_key_dir(host) / (HOST_KEY + ".pub")).read_text().split()
    return f"{fields[0]} {fields[1]}"


def render_ssh_config():
    """Return the text of ``.lab/ssh_config``."""
    blocks = ["# Written by the tinsnip lab: reach its hosts with `ssh -F <this file> HOST`.\n"]
    for host, ip in settings.LAB_HOSTS.items():
        blocks.append(
            f"Host {host}\n"
            f"    HostName {ip}\n"
            f"    User root\n"
            f"    IdentityFile {client_key_path()}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {settings.known_hosts_path()}\n"
            f"    StrictHostKeyChecking yes\n"
            f"    CheckHostIP no\n"
            f"    ConnectTimeout {30 if host in settings.KERNEL_HOSTS else 5}\n"
        )
    return "\n".join(blocks)


def render_known_hosts():
    """Return the text of ``.lab/known_hosts`` (each host under its name and its address)."""
    return "".join(f"{host},{ip} {public_host_key(host)}\n"
                   for host, ip in settings.LAB_HOSTS.items())


def write_client_files():
    """Write ``.lab/ssh_config`` and ``.lab/known_hosts`` from the current keys."""
    _write(settings.ssh_config_path(), render_ssh_config())
    _write(settings.known_hosts_path(), render_known_hosts())
