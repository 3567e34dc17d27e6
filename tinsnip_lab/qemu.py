"""The lab's kernel hosts: QEMU virtual machines with a kernel of their own on the lab network.

Each one is ``qemu-system-x86_64`` started (daemonized) inside the lab's bridge namespace, with
software emulation (``-accel tcg,thread=multi -cpu max -M q35 -m 768``, two virtual CPUs for
the machine host and one for the NAS, ``mitigations=off``: a lab VM runs only the lab's code;
this machine's
``/dev/kvm`` hangs Debian's kernels, ``TINSNIP_LAB_ACCEL=kvm`` uses a KVM that works), a direct
kernel boot of the image's ``vmlinuz`` and ``initrd.img``, ``virtio-blk`` over a qcow2 overlay of
the cached image (the host's disk, kept across reboots, removed by ``lab.down``) and
``virtio-net`` on a tap attached to the lab bridge. The host's own files (name, address, SSH
keys, authorised key, ``/etc/hosts``; ``/volume1`` on the NAS) reach the guest as a tarball
through ``fw_cfg`` (see :mod:`tinsnip_lab.kernelimage`).

QEMU ends when its guest powers off; a guest reboot keeps the process (and its pid).
"""

import os
import signal
import subprocess
import tarfile
import time

from tinsnip_lab import hosts, kernelimage, network, nspawn, remote, settings
from tinsnip_lab.errors import LabError

#: Software emulation by default, with a translation cache of 256 MiB (QEMU's default of 1 GiB
#: doubles the host memory a VM takes).
ACCEL = os.environ.get("TINSNIP_LAB_ACCEL", "tcg,thread=multi,tb-size=256")
MEMORY_MB = 768


def cpus(host):
    """Virtual CPUs of ``host``: two for the machine host, where the tests' work runs (the
    rootless daemon, its shims and runc, compose, the tasks' commands run side by side: the
    checklist's commands took a fifth less time with two than with one), one for the NAS."""
    return 1 if host == settings.KERNEL_NAS else 2


def tap_name(host):
    return (settings.PREFIX + host)[:15]


def create_tap(host):
    """A tap for ``host`` on the lab bridge (in the bridge's namespace, where QEMU runs)."""
    tap, br = tap_name(host), settings.BRIDGE_NETNS
    network._ip("link", "del", tap, netns=br, check=False)
    network._ip("tuntap", "add", "dev", tap, "mode", "tap", netns=br)
    network._ip("link", "set", tap, "master", settings.BRIDGE, "up", netns=br)


def prepare(host, image):
    """A fresh disk (qcow2 overlay of the image) and the seed tarball for ``host``."""
    seed = nspawn.prepare(host, match="Type=ether")  # the guest's one NIC, whatever its name
    base = hosts.host_dir(host)
    if host == settings.KERNEL_NAS:
        (seed / "volume1").mkdir(mode=0o755)
    with tarfile.open(base / "seed.tar", "w") as tar:
        for entry in sorted(seed.iterdir()):
            tar.add(entry, arcname=entry.name,
                    filter=lambda ti: _root_owned(ti))
    (base / "seed.tar").chmod(0o600)
    proc = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                           "-b", str(image / "disk.img"), str(base / "disk.qcow2")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"qemu-img create failed for {host}: {proc.stderr.strip()}")


def _root_owned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def argv(host, image):
    """The QEMU command line that boots ``host`` (daemonized, pid in its folder)."""
    base = hosts.host_dir(host)
    append = (f"root=/dev/vda rw console=ttyS0 quiet systemd.hostname={host} "
              "systemd.show_status=false mitigations=off")
    if host != settings.KERNEL_NAS:
        append += " systemd.mask=nfs-server.service"
    return [
        "ip", "netns", "exec", settings.BRIDGE_NETNS,
        "qemu-system-x86_64", "-name", f"tinsnip-lab-{host}", "-nodefaults", "-no-user-config",
        "-accel", ACCEL, "-cpu", "max", "-M", "q35", "-smp", str(cpus(host)),
        "-m", str(MEMORY_MB),
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
        "-append", append,
        "-drive", f"file={base / 'disk.qcow2'},format=qcow2,if=none,id=disk0,cache=unsafe",
        "-device", "virtio-blk-pci,drive=disk0",
        "-netdev", f"tap,id=net0,ifname={tap_name(host)},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={settings.mac_for(settings.LAB_HOSTS[host])},"
                   "romfile=",
        "-fw_cfg", f"name={kernelimage.FW_CFG_SEED},file={base / 'seed.tar'}",
        "-device", "virtio-rng-pci",
        "-display", "none", "-serial", f"file:{base / 'console.log'}",
        "-daemonize", "-pidfile", str(base / "qemu.pid"),
    ]


def start(host, image, *, fresh=True):
    """Boot ``host`` (a fresh disk unless ``fresh`` is False); return QEMU's pid at once."""
    base = hosts.host_dir(host)
    if fresh:
        prepare(host, image)
    elif not (base / "disk.qcow2").exists():
        raise LabError(f"{host} has no disk to boot from; lab.up --kernel first")
    create_tap(host)
    (base / "qemu.pid").unlink(missing_ok=True)
    with open(base / "qemu.log", "ab") as log:
        proc = subprocess.run(argv(host, image), stdin=subprocess.DEVNULL, stdout=log,
                              stderr=log, close_fds=True)
    if proc.returncode != 0:
        tail = (base / "qemu.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise LabError(f"{host}: QEMU did not start (exit {proc.returncode}):\n  "
                       + "\n  ".join(tail))
    return int((base / "qemu.pid").read_text().strip())


def running(host, pid):
    """True if ``pid`` is the QEMU of ``host``."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return f"tinsnip-lab-{host}".encode() in args and hosts._alive(pid)


def boot_id(host):
    return remote.run_root(host, "cat /proc/sys/kernel/random/boot_id", timeout=15).strip()


def wait_ready(host, pid, timeout=300.0, old_boot=None):
    """Wait until ``host`` answers SSH (with a boot ID other than ``old_boot``) and its boot has
    finished (``running`` or ``degraded``); return the boot ID.

    :raises LabError: QEMU ended, or the time ran out (with the console's last lines).
    """
    ip = settings.LAB_HOSTS[host]
    deadline = time.monotonic() + timeout
    current = None
    while time.monotonic() < deadline:
        if not running(host, pid):
            raise LabError(f"{host}: QEMU ended while booting\n  " + _console_tail(host))
        if hosts.ssh_answers(ip, timeout=5.0):
            try:
                current = boot_id(host)
            except (LabError, subprocess.TimeoutExpired):
                current = None
            if current and current != old_boot:
                break
        time.sleep(0.5)
    else:
        raise LabError(f"{host}: no SSH with a new boot in {timeout:.0f}s\n  "
                       + _console_tail(host))
    left = max(deadline - time.monotonic(), 10)
    state = remote.run_root(host, "systemctl is-system-running --wait; true",
                            timeout=left).strip()
    if state not in ("running", "degraded"):
        raise LabError(f"{host}: systemd did not finish booting (state {state!r})")
    return current


def _console_tail(host):
    path = hosts.host_dir(host) / "console.log"
    lines = path.read_text(errors="replace").strip().splitlines()[-8:] if path.exists() else []
    return "\n  ".join(lines)


def poweroff(host, pid, timeout=150.0):
    """Power ``host`` off from inside and wait until QEMU ends; after ``timeout`` (or at once
    when its SSH does not answer) kill QEMU. :returns: seconds until QEMU ended."""
    started = time.monotonic()
    if not running(host, pid):
        return 0.0
    try:
        remote.run_root(host, "systemctl poweroff", timeout=15)
        asked = True
    except (LabError, subprocess.TimeoutExpired):
        asked = False  # the connection may close as the guest goes down, or never opened
    deadline = started + (timeout if asked else 20)
    while time.monotonic() < deadline:
        if not running(host, pid):
            hosts._reap(pid)
            return time.monotonic() - started
        time.sleep(0.2)
    kill(pid)
    return time.monotonic() - started


def kill(pid):
    """End a QEMU at once (a power cut)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(250):
        hosts._reap(pid)
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.02)


def reboot(host, pid, timeout=300.0):
    """``systemctl reboot`` inside ``host``; wait for the new boot. :returns: seconds."""
    old = boot_id(host)
    started = time.monotonic()
    try:
        remote.run_root(host, "systemctl reboot", timeout=15)
    except (LabError, subprocess.TimeoutExpired):
        pass
    wait_ready(host, pid, timeout=timeout, old_boot=old)
    return time.monotonic() - started


def guest_memory_mib(host):
    """Memory the guest uses (MemTotal - MemAvailable), in MiB."""
    info = dict(line.split(":", 1) for line in
                remote.run_root(host, "cat /proc/meminfo", timeout=15).splitlines())
    kib = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
    return kib // 1024


def rss_mib(pid):
    """Host memory (resident set) of a QEMU, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0
