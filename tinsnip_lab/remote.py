"""Run a command on a lab host as root with the system ssh client and the lab's config."""

import subprocess

from tinsnip_lab.errors import LabError
from tinsnip_lab import settings


def ssh_argv(host, command):
    """Return the argv that runs ``command`` (a shell string) on ``host`` over SSH."""
    if host not in settings.LAB_HOSTS:
        raise LabError(f"unknown lab host {host!r}; known: {', '.join(settings.LAB_HOSTS)}")
    return ["ssh", "-F", str(settings.ssh_config_path()), "-o", "BatchMode=yes",
            host, command]


def run_root(host, command, timeout=60):
    """Run ``command`` on ``host``; return its stdout, raise LabError on failure."""
    proc = subprocess.run(ssh_argv(host, command), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"{host}: `{command}` failed (exit {proc.returncode}): "
                       f"{proc.stderr.strip()[-500:]}")
    return proc.stdout
