"""The lab: disposable real hosts in namespaces on this machine, for tests and demos.

`lab.up` starts a NAS (ds412plus) and two Linux machines (homelab1, homelab2) that tinsnip
reaches over real SSH with `.lab/ssh_config`. The NAS's NFS server (nfs-ganesha) and the
machines' `mount.nfs` (a FUSE client over libnfs) are userspace stand-ins: this kernel has
neither an NFS server nor an NFS client. Needs root and the packages in .ci/lab-deps.sh.
"""

from invoke import Collection, Exit, task

import tinsnip_lab as _lab
from tinsnip_lab.errors import LabError


@task(help={
    "rebuild": "Rebuild the root filesystem (reusing the debootstrap cache) and restart the hosts.",
    "extra_hosts": "also start this many cheap machine hosts extra01.. (for benchmarks; 0: none; "
                   "default: as many as the lab has)",
    "kernel": "also boot the kernel hosts ds920 (kernel NFS server) and homelab4 (systemd, "
              "kernel NFS client) in QEMU: about a minute, and a few minutes to build their "
              "image the first time; a lab that has them keeps them until lab.down",
})
def up(c, rebuild=False, extra_hosts=-1, kernel=False):
    """Start the lab hosts (building the root filesystem the first time)."""
    try:
        _lab.up(rebuild=rebuild, extra_hosts=None if extra_hosts < 0 else extra_hosts,
                kernel=kernel)
    except LabError as e:
        raise Exit(f"lab.up failed: {e}", code=1)


@task
def down(c):
    """Stop the lab hosts and remove their namespaces, links and mounts."""
    try:
        _lab.down()
    except LabError as e:
        raise Exit(f"lab.down failed: {e}", code=1)


@task(help={"quiet": "Print nothing; exit 0 if the lab is up, 1 if not."})
def status(c, quiet=False):
    """Show whether the lab is up, each host's address, process and SSH state."""
    report = _lab.status()
    if not quiet:
        print(f"lab: {'up' if report['up'] else 'down'}"
              + (f" (rootfs {report['rootfs']})" if report["rootfs"] else ""))
        for host, h in report["hosts"].items():
            state = "ssh ok" if h["ssh"] else ("running" if h["running"] else "stopped")
            print(f"  {host:<10} {h['ip']:<12} pid {h['pid'] or '-':<8} {state:<8} "
                  f"PID 1: {h['init']}")
        if report["kernel_image"]:
            print(f"  kernel hosts' image {report['kernel_image']}")
        if report["rootfs"] and report["rootfs"] != report["current_rootfs"]:
            print("  the root filesystem has changed since start: lab.down, then lab.up")
        leftovers = report["namespaces"] + report["links"] + report["cgroups"]
        if leftovers and not report["up"]:
            print(f"  left behind: {', '.join(leftovers)} (lab.up or lab.down cleans up)")
        if report["up"]:
            print(f"  ssh -F {_lab.ssh_config_path()} HOST")
    if not report["up"]:
        raise Exit(code=1)


@task(help={"host": "The lab host to reboot (homelab4 and ds920 reboot their own kernel, "
                    "homelab3 boots systemd again; the others restart sshd)."})
def reboot(c, host):
    """Stop a lab host and start it again with its disk kept, as a real reboot does.

    homelab4 and ds920 (lab.up --kernel) run `systemctl reboot`: a new kernel boot.
    homelab3 powers off from inside and boots again: systemd brings back its fstab mounts,
    lingering users' units and their containers. A host whose PID 1 is sshd keeps its files
    only: mounts, daemons and containers stay down until something starts them again.
    """
    try:
        _lab.reboot(host)
    except LabError as e:
        raise Exit(f"lab.reboot failed: {e}", code=1)


def _power(host, on):
    try:
        _lab.power(host, on=on)
    except LabError as e:
        raise Exit(f"lab.{'boot' if on else 'poweroff'} failed: {e}", code=1)


@task(help={"host": "The kernel host to power off (ds920 or homelab4)."})
def poweroff(c, host):
    """Power a kernel host off from inside (`systemctl poweroff`); lab.boot starts it again."""
    _power(host, on=False)


@task(help={"host": "The kernel host to boot again on its disk (ds920 or homelab4)."})
def boot(c, host):
    """Boot a kernel host that was powered off, on the disk it had."""
    _power(host, on=True)


ns = Collection("lab", up, down, status, reboot, poweroff, boot)


def with_lab(product: Collection) -> Collection:
    """``product`` (tinsnip's own collections) plus ``lab`` and ``demo``, for a checkout; with
    ``TINSNIP_LAB=1`` its tasks reach the lab's hosts and no others."""
    from tinsnip_lab.demo import demo

    product.add_collection(ns)
    product.add_task(demo)
    return _lab.configure(product)
