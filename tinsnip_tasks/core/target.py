"""SSH targets ``[user@]host[:port]``: pure parsing, no connection."""
from __future__ import annotations


def split_target(target: str) -> tuple[str | None, str, int | None]:
    """``(user, host, port)`` of an SSH target; user and port are None when not given."""
    user, _, rest = target.rpartition("@")
    host, _, port = rest.partition(":")
    return (user or None), host, (int(port) if port else None)


def address_of(target: str) -> str:
    """The host part of an SSH target ``[user@]host[:port]`` (what other hosts call it)."""
    return split_target(target)[1]
