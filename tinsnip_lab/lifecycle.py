"""Bring the lab up, take it down, report on it."""

import contextlib
import fcntl
import json
import os
import time

from tinsnip_lab.errors import LabError
from tinsnip_lab import hosts, network, rootfs, settings, sshkeys


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
                        "ssh": alive and hosts.ssh_answers(ip)}
    namespaces = network.lab_namespaces()
    links = network.lab_links()
    up = (all(h["ssh"] for h in report.values()) and settings.BRIDGE_NETNS in namespaces
          and settings.OUTER_LINK in links and settings.ssh_config_path().exists())
    return {"up": up, "rootfs": state.get("rootfs"), "current_rootfs": rootfs.rootfs_key(),
            "hosts": report, "namespaces": namespaces, "links": links}


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
    return bool(network.lab_namespaces() or network.lab_links() or hosts.HOSTS_DIR.exists())


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
    network.remove(log)
    hosts.clear_dirs()
    _state_path().unlink(missing_ok=True)
    mounts = lab_mounts()
    if mounts:
        raise LabError(f"mounts of the lab left behind: {', '.join(mounts)}")
    log("lab: down (no lab process, namespace or link left)")
    return True


def up(rebuild=False, log=print):
    """Bring the lab up; do nothing when it is already up (unless ``rebuild``).

    Builds the root filesystem the first time (debootstrap, cached under
    ``/var/cache/tinsnip-lab``), then starts ``ds412plus``, ``homelab1`` and ``homelab2``,
    writes ``.lab/ssh_config`` and ``.lab/known_hosts`` and waits for every sshd. Leftovers
    of a lab whose processes died are removed first.

    :param bool rebuild: rebuild the rootfs (the debootstrap cache is kept) and restart.
    :returns: True if something was started, False if the lab was already up.
    :raises LabError: a step failed; the message says which.
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, veth links)")
    with _exclusive():
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
    rootfs.prune_unpacked(key, in_use=bool(network.any_lab_namespaces()))
    made = sshkeys.ensure_keys()
    if made:
        log(f"lab: generated SSH keys: {', '.join(made)}")
    sshkeys.write_client_files()
    try:
        network.create(log)
        pids = {host: hosts.start(host, lower) for host in settings.LAB_HOSTS}
        _write_state({"pids": pids, "rootfs": key})
        for host, pid in pids.items():
            hosts.wait_for_ssh(host, pid)
        extra = _start_nas_services(log)
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
