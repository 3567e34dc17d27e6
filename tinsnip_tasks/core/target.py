"""SSH targets ``[user@]host[:port]``: pure parsing and validation, no connection.

Accepted, as OpenSSH accepts them: ssh_config aliases and host names (letters, digits, ``_``,
``.``, ``-``; ``nas_main``), IPv4 addresses, IPv6 literals bare (``::1``, ``fe80::1``, no port)
or in brackets (``[::1]``, ``[::1]:2222``), an optional user (``Admin@nas.lan``, upper case
allowed) and an optional port 1..65535. Nothing may start with ``-`` (ssh would read an
option) and the whole value must match: a trailing newline is refused like any other character.
"""
from __future__ import annotations

import ipaddress
import re

from ..errors import InputError

_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_NAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")
_PORT_RE = re.compile(r"[0-9]{1,5}")

HINT = ("use an ssh_config alias, a host name or address, an IPv6 address (in brackets to give"
        " a port), optionally with user@ and :port")


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return "%" not in text


def split_target(target: str) -> tuple[str | None, str, int | None]:
    """``(user, host, port)`` of an SSH target; user and port are None when not given. An IPv6
    host comes back without brackets. Does not validate (see :func:`check_target`)."""
    user, _, rest = target.rpartition("@")
    if rest.startswith("[") and "]" in rest:
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") > 1:  # a bare IPv6 address has no port
        host, port = rest, ""
    else:
        host, _, port = rest.partition(":")
    return (user or None), host, (int(port) if port.isdigit() else None)


def check_target(target) -> str:
    """Return ``target`` when it is an SSH target tinsnip accepts (see the module), else raise.

    :raises InputError: saying what is wrong, with the accepted forms.
    """
    if not isinstance(target, str):
        raise InputError(f"{target!r} is not an SSH target: {HINT}")
    user, at, rest = target.rpartition("@")
    bad = at and not _USER_RE.fullmatch(user)
    if rest.startswith("["):
        inner, close, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else None
        bad = bad or not close or not _ipv6(inner) or (tail and port is None)
    elif rest.count(":") > 1:
        port = None
        bad = bad or not _ipv6(rest)
    else:
        host, colon, port = rest.partition(":")
        port = port if colon else None
        bad = bad or not _NAME_RE.fullmatch(host)
    if bad or (port is not None and not _PORT_RE.fullmatch(port)):
        raise InputError(f"{target!r} is not an SSH target: {HINT}")
    if port is not None and not 1 <= int(port) <= 65535:
        raise InputError(f"{target!r}: the port must be 1..65535")
    return target


def address_of(target: str) -> str:
    """The host part of an SSH target (what other hosts call it): ``nas_main``, ``10.0.0.2``,
    ``::1`` (IPv6 without brackets, as /etc/exports lists a client)."""
    return split_target(target)[1]


def nfs_server(address: str) -> str:
    """``address`` as the server part of an NFS source ``SERVER:/path`` (fstab, /proc/mounts):
    an IPv6 address goes in brackets (nfs(5))."""
    return f"[{address}]" if ":" in address else address


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def check_address(value) -> str:
    """Return ``value`` when it is an address another host can use in /etc/exports or an fstab
    line: an IPv4 address, an IPv6 address (no zone, no brackets) or a DNS host name (labels of
    letters, digits and inner ``-``; at most 253 characters), matched whole.

    :raises InputError: saying which forms are accepted.
    """
    if isinstance(value, str):
        try:
            ipaddress.IPv4Address(value)
            return value
        except ValueError:
            pass
        if _ipv6(value) or (len(value) <= 253 and _HOSTNAME_RE.fullmatch(value)
                            and not value.replace(".", "").isdigit()):
            return value
    raise InputError(f"{value!r} is not an address: use an IPv4 address (192.168.1.20), an IPv6 "
                     "address (fd00::20) or a DNS host name (nas.lan)")


def host_address(target: str, resolve=None) -> str:
    """The address other hosts reach an SSH target's host by: what ``resolve(host)`` gives
    (the SSH config's ``HostName`` for an alias), when it gives something else than the host,
    else the host's name (:func:`address_of`).

    :raises InputError: ``resolve`` gives something that is not an address.
    """
    host = address_of(target)
    found = resolve(host) if resolve else None
    if found and found != host:
        try:
            return check_address(found)
        except InputError as e:
            raise InputError(f"the SSH config gives HostName {found!r} for {host!r}: {e}; set "
                             "address: for it in the inventory") from None
    return host
