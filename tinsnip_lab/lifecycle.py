"""Bring the lab up, take it down, report on it."""

import contextlib
import fcntl
import json
import os
import time

from tinsnip_lab.errors import LabError
from tinsnip_lab import hosts, network, nspawn, registry, rootfs, sdrootfs, settings, sshkeys


def _state_path():
    return settings.lab_dir() / "state.json"


def _read_state():
    try:
        return json.loads(_state_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_state(state):
    path = _state_path()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _exclusive():
    """Hold the lab's lock so that two ``up``/``down`` calls never interleave."""
    settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def status():
    """Return the lab's state as data.

    :returns: ``{"up": bool, "rootfs": key the hosts run on or None, "current_rootfs": key
        the next start would use, "hosts": {name: {"ip", "pid", "running", "ssh"}},
        "namespaces": [...], "links": [...]}``.
    """
    state = _read_state()
    pids = state.get("pids", {})
    report = {}
    for host, ip in settings.LAB_HOSTS.items():
        pid = pids.get(host)
        alive = hosts.running(host, pid)
        report[host] = {"ip": ip, "pid": pid, "running": alive,
                        "ssh": alive and hosts.ssh_answers(ip),
                        "init": "systemd" if host in settings.SYSTEMD_HOSTS else "sshd"}
    namespaces = network.lab_namespaces()
    links = network.lab_links()
    up = (all(h["ssh"] for h in report.values()) and settings.BRIDGE_NETNS in namespaces
          and settings.OUTER_LINK in links and settings.ssh_config_path().exists())
    return {"up": up, "rootfs": state.get("rootfs"), "current_rootfs": rootfs.rootfs_key(),
            "sdrootfs": state.get("sdrootfs"), "hosts": report, "namespaces": namespaces,
            "links": links, "cgroups": nspawn.leftover_cgroups()}


def is_up():
    """Return True if every lab host is running and answers on its SSH port."""
    return status()["up"]


def lab_mounts():
    """Mount points on this machine that belong to this slot's lab (host folders, netns files)."""
    roots = (str(hosts.HOSTS_DIR) + "/", str(network.NETNS_DIR / settings.PREFIX))
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return sorted(p for p in points if p.startswith(roots))


def _leftovers():
    return bool(network.lab_namespaces() or network.lab_links() or hosts.HOSTS_DIR.exists()
                or nspawn.leftover_cgroups())


def down(log=print):
    """Stop every lab host and remove every namespace, link and working directory.

    Safe to run when the lab is partly up or already down.

    :returns: True if something was stopped or removed.
    """
    with _exclusive():
        return _down(log)


def _down(log):
    if not _leftovers():
        log("lab: already down")
        _state_path().unlink(missing_ok=True)
        return False
    hosts.kill_all(log)
    for host in settings.SYSTEMD_HOSTS:
        nspawn.remove_cgroups(host)
    network.remove(log)
    hosts.clear_dirs()
    _state_path().unlink(missing_ok=True)
    mounts = lab_mounts()
    if mounts:
        raise LabError(f"mounts of the lab left behind: {', '.join(mounts)}")
    log("lab: down (no lab process, namespace, link, cgroup or mount left)")
    return True


def up(rebuild=False, log=print, extra_hosts=None):
    """Bring the lab up; do nothing when it is already up (unless ``rebuild``).

    Builds the root filesystems the first time (debootstrap, cached under
    ``/var/cache/tinsnip-lab``: the shared one, and the systemd hosts' own), then starts
    ``ds412plus``, ``homelab1``, ``homelab2`` and the systemd host ``homelab3``, writes
    ``.lab/ssh_config`` and ``.lab/known_hosts`` and waits for every sshd (and for
    homelab3's boot to finish). Leftovers
    of a lab whose processes died are removed first.

    :param bool rebuild: rebuild the rootfs (the debootstrap cache is kept) and restart.
    :param int extra_hosts: this many extra machine hosts (``extra01`` ..), for benchmarks;
        None keeps the number the lab has. A lab that is up with another number restarts.
    :returns: True if something was started, False if the lab was already up.
    :raises LabError: a step failed; the message says which.
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, veth links)")
    with _exclusive():
        if extra_hosts is not None and extra_hosts != settings.extra_hosts():
            if _leftovers():
                _down(log)
            settings.set_extra_hosts(extra_hosts)
        return _up(rebuild, log)


def _up(rebuild, log):
    started = time.monotonic()
    if not rebuild and is_up():
        log("lab: already up; nothing to do (lab.down first to restart)")
        return False
    if _leftovers():
        log("lab: removing what a previous lab left behind")
        _down(log=lambda msg: None)
    lower, key = rootfs.ensure_rootfs(rebuild=rebuild, log=log)
    in_use = bool(network.any_lab_namespaces())
    rootfs.prune_unpacked(key, in_use=in_use)
    sdlower = sdrootfs.ensure(log) if settings.SYSTEMD_HOSTS else None
    if sdlower is not None:
        sdrootfs.prune_unpacked(sdlower, in_use=in_use)
    made = sshkeys.ensure_keys()
    if made:
        log(f"lab: generated SSH keys: {', '.join(made)}")
    sshkeys.write_client_files()
    try:
        network.create(log)
        pids = {host: _start(host, lower, sdlower) for host in settings.LAB_HOSTS}
        _write_state({"pids": pids, "rootfs": key,
                      "sdrootfs": sdlower.name.split("-", 1)[1] if sdlower else None})
        for host, pid in pids.items():
            _wait_ready(host, pid)
        extra = _start_nas_services(log)
        extra += registry.start((lower / "bin/busybox").read_bytes(), log)
    except Exception:
        _down(log=lambda msg: None)
        raise
    log(f"lab: up in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{h} {ip}" for h, ip in settings.LAB_HOSTS.items())
        + f"; ssh -F {settings.ssh_config_path()} HOST" + extra)
    return True


def _start_nas_services(log):
    """Run the NFS stand-in's start command on the NAS, if the stand-in is installed."""
    nfs = rootfs.nfs_module(log)
    if nfs is None:
        return ""
    from tinsnip_lab import remote
    remote.run_root(settings.NAS_HOST, nfs.NAS_START_COMMAND)
    return "; NFS server started on " + settings.NAS_HOST


def _start(host, lower, sdlower, fresh=True):
    if host in settings.SYSTEMD_HOSTS:
        return nspawn.start(host, sdlower, fresh=fresh)
    return hosts.start(host, lower, fresh=fresh)


def _wait_ready(host, pid):
    """Wait for sshd; on a systemd host also for the boot to finish (every start-up unit)."""
    if host not in settings.SYSTEMD_HOSTS:
        hosts.wait_for_ssh(host, pid)
        return
    hosts.wait_for_ssh(host, pid, timeout=60.0)
    from tinsnip_lab import remote
    state = remote.run_root(host, "systemctl is-system-running --wait; true", timeout=120).strip()
    if state not in ("running", "degraded"):
        raise LabError(f"{host}: systemd did not finish booting (state {state!r})")


def reboot(host, log=print):
    """Stop ``host`` and start it again on the disk it had, as a real reboot does.

    A systemd host powers off from inside (``systemctl poweroff``) and boots again: its
    units, linger, fstab mounts and enabled user units come back as systemd starts them. A
    host whose PID 1 is sshd loses its processes (a power cut) and starts sshd again on the
    same disk: files stay, and nothing else starts (no mounts, no daemons).

    :returns: ``{"host", "down", "up"}``, seconds to stop and to answer SSH again.
    :raises LabError: the lab is not up, or the host did not come back.
    """
    if host not in settings.LAB_HOSTS:
        raise LabError(f"unknown lab host {host!r}; known: {', '.join(settings.LAB_HOSTS)}")
    with _exclusive():
        state = _read_state()
        pid = state.get("pids", {}).get(host)
        if not hosts.running(host, pid):
            raise LabError(f"{host} is not running; lab.up first")
        started = time.monotonic()
        if host in settings.SYSTEMD_HOSTS:
            nspawn.poweroff(host, pid)
            nspawn.remove_cgroups(host)
            lower = sdrootfs.tree(state.get("sdrootfs"))
        else:
            hosts.wait_gone(host)
            lower = rootfs.rootfs_dir(state.get("rootfs"))
        stopped = time.monotonic()
        new_pid = _start(host, lower, lower, fresh=False)
        state.setdefault("pids", {})[host] = new_pid
        _write_state(state)
        _wait_ready(host, new_pid)
        times = {"host": host, "down": round(stopped - started, 2),
                 "up": round(time.monotonic() - stopped, 2)}
    log(f"lab: {host} rebooted: down in {times['down']}s, ssh again {times['up']}s later")
    return times
