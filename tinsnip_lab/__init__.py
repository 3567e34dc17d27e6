"""The built-in lab: real hosts in namespaces on this machine, reached over SSH.

``up()`` starts a NAS (``ds412plus``) and two Linux machines (``homelab1``, ``homelab2``),
each with its own network, mount, UTS and PID namespaces, an overlay over a shared Debian
root filesystem, and ``sshd``, plus ``homelab3``, a machine booted with systemd as PID 1 in
``systemd-nspawn``; ``up(kernel=True)`` also boots ``ds920`` (the kernel NFS server) and
``homelab4`` (systemd, the kernel NFS client) in QEMU. ``reboot(host)`` restarts one host with its disk kept. ``.lab/ssh_config`` reaches them as root with host-key
checking on.
"""

from tinsnip_lab.settings import (
    KERNEL_HOSTS,
    KERNEL_NAS,
    LAB_HOSTS,
    NAS_HOST,
    SYSTEMD_HOSTS,
    known_hosts_path,
    lab_dir,
    lab_mode,
    ssh_config_path,
    tinsnip_settings,
)
from tinsnip_lab.lifecycle import (down, is_up, power, reboot, start_kernel, status, up,
                                   wait_kernel)

__all__ = [
    "LAB_HOSTS", "NAS_HOST", "SYSTEMD_HOSTS", "lab_dir", "ssh_config_path", "known_hosts_path",
    "is_up", "up", "down", "status", "reboot", "lab_mode", "tinsnip_settings", "ssh_profile",
    "configure", "KERNEL_HOSTS", "KERNEL_NAS", "start_kernel", "wait_kernel", "power",
]


def ssh_profile():
    """The SSH profile (:class:`tinsnip_tasks.connect.SshProfile`) that reaches the lab."""
    from tinsnip_tasks.connect import SshProfile

    s = tinsnip_settings()
    return SshProfile(ssh_config=s["ssh_config"], allowed_hosts=frozenset(s["allowed_hosts"]))


def configure(ns):
    """Point ``ns``'s tinsnip settings at the lab when ``TINSNIP_LAB=1``; return ``ns``."""
    if lab_mode():
        ns.configure({"tinsnip": tinsnip_settings()})
    return ns
