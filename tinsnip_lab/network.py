"""The lab's network: a bridge in its own namespace, one namespace per host, a veth to the outside.

The bridge lives in the namespace ``tslab-br`` rather than in the outer one, so the outer
machine's firewall (whose FORWARD policy may be DROP once Docker runs there) never sees
traffic between hosts. The outer machine joins the bridge through the veth ``tslab-outer``.
"""

import os
import re
import subprocess
from pathlib import Path

from tinsnip_lab.errors import LabError
from tinsnip_lab import settings

NETNS_DIR = Path("/run/netns")


def _ip(*args, netns=None, check=True):
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def lab_namespaces():
    """Return the names of the lab's network namespaces that exist now."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(settings.PREFIX))


def any_lab_namespaces():
    """Return the network namespaces of every lab slot on this machine (``tslab-*``,
    ``tsl1-*`` .. ``tsl9-*``), this slot's included."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir()
                  if p.name.startswith("tslab-") or re.match(r"tsl[0-9]-", p.name))


def lab_links():
    """Return the names of the lab's links in the outer namespace."""
    out = _ip("-o", "link", "show").stdout
    names = []
    for line in out.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        if name.startswith(settings.PREFIX):
            names.append(name)
    return sorted(names)


def netns_inode(name):
    """Return the inode identifying namespace ``name``, or None if it does not exist."""
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except FileNotFoundError:
        return None


def pids_in_netns(name):
    """Return the pids of every process whose network namespace is ``name``."""
    inode = netns_inode(name)
    if inode is None:
        return []
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino == inode:
                pids.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def create(log=print):
    """Create the bridge namespace, the outer veth and one namespace and veth per host."""
    br = settings.BRIDGE_NETNS
    _ip("netns", "add", br)
    _ip("link", "set", "lo", "up", netns=br)
    _ip("link", "add", settings.BRIDGE, "type", "bridge", netns=br)
    _ip("link", "set", settings.BRIDGE, "up", netns=br)

    outer_cidr = f"{settings.OUTER_IP}/{settings.PREFIX_LEN}"
    _ip("link", "add", settings.OUTER_LINK, "address", settings.mac_for(settings.OUTER_IP),
        "type", "veth", "peer", "name", settings.OUTER_PEER,
        "address", settings.mac_for(settings.OUTER_IP, kind=0x06), "netns", br)
    _ip("addr", "add", outer_cidr, "dev", settings.OUTER_LINK)
    _ip("link", "set", settings.OUTER_LINK, "up")
    _ip("link", "set", settings.OUTER_PEER, "master", settings.BRIDGE, "up", netns=br)

    for host, ip in settings.LAB_HOSTS.items():
        ns = settings.netns_name(host)
        port = (settings.PREFIX + host)[:15]
        _ip("netns", "add", ns)
        _ip("link", "set", "lo", "up", netns=ns)
        _ip("link", "add", port, "address", settings.mac_for(ip, kind=0x06),
            "type", "veth", "peer", "name", "eth0", "address", settings.mac_for(ip),
            "netns", ns, netns=br)
        _ip("link", "set", port, "master", settings.BRIDGE, "up", netns=br)
        if host in settings.SYSTEMD_HOSTS:
            continue  # its own systemd-networkd configures eth0 at boot
        _ip("addr", "add", f"{ip}/{settings.PREFIX_LEN}", "dev", "eth0", netns=ns)
        _ip("link", "set", "eth0", "up", netns=ns)
    log(f"lab: network up: bridge {settings.BRIDGE} in netns {br}, "
        f"this machine at {settings.OUTER_IP} via {settings.OUTER_LINK}")


def remove(log=print):
    """Delete every lab link in the outer namespace and every lab namespace.

    Processes still inside the namespaces must have been stopped first.
    """
    for link in lab_links():
        _ip("link", "del", link, check=False)
    for ns in lab_namespaces():
        _ip("netns", "del", ns, check=False)
    left = lab_links() + lab_namespaces()
    if left:
        raise LabError(f"could not remove: {', '.join(left)}")
