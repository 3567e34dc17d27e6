"""``--limit`` patterns, as Ansible's: select parts of the inventory by name (pure, no I/O).

A limit is a comma-separated list of patterns. Each pattern names a host (``homelab1``), a
machine (``gazette``), a machine-environment (``gazette:prod``) or a service (``hello``), and may
use shell globs (``gazette:*``, ``homelab?``). ``!PATTERN`` excludes what it matches and
``&PATTERN`` keeps only what it also matches; plain patterns add. With only exclusions, they
are taken from everything. A plain pattern without globs that matches nothing is an error (a
typo would otherwise select nothing, silently).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..errors import InputError

_PATTERN_RE = re.compile(r"[A-Za-z0-9_.:@*?\[\]-]+")


@dataclass(frozen=True)
class Item:
    """Something ``--limit`` selects: a machine-environment on its host, or one of its services."""

    host: str
    machine: str
    env: str
    service: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a pattern may use for this item."""
        names = (self.host, self.machine, f"{self.machine}:{self.env}")
        if self.service:
            names += (self.service, f"{self.machine}:{self.env}:{self.service}")
        return names

    def matches(self, pattern: str) -> bool:
        return any(fnmatchcase(n, pattern) for n in self.names)


@dataclass(frozen=True)
class Limit:
    include: tuple[str, ...] = ()
    intersect: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def parse_limit(text: str) -> Limit:
    """Split ``text`` into its patterns.

    :raises InputError: on an empty pattern or one with characters no name has.
    """
    include, intersect, exclude = [], [], []
    if not text:
        return Limit()
    if not text.strip():  # never "everything": a limit that came out empty is a mistake
        raise InputError(f"--limit {text!r} holds no pattern; give one (host, machine, "
                         "machine:env or service) or leave --limit out to select everything")
    for raw in text.split(","):
        p = raw.strip()
        kind = include
        if p[:1] in ("!", "&"):
            kind = exclude if p[0] == "!" else intersect
            p = p[1:]
        if not p or not _PATTERN_RE.fullmatch(p):
            raise InputError(f"--limit: {raw.strip()!r} is not a pattern: use host, machine, "
                             "machine:env or service names, globs (* ? [..]), ! to exclude, "
                             "& to intersect, separated by commas")
        kind.append(p)
    return Limit(tuple(include), tuple(intersect), tuple(exclude))


def _literal(p: str) -> bool:
    return not any(ch in p for ch in "*?[")


def select(items: list[Item], limit: Limit) -> list[Item]:
    """The items ``limit`` selects, in their order.

    :raises InputError: when a plain pattern without globs matches nothing.
    """
    for p in limit.include + limit.intersect + limit.exclude:
        if _literal(p) and not any(i.matches(p) for i in items):
            raise InputError(f"--limit: {p!r} matches no host, machine, machine:env or service "
                             "of the inventory")
    chosen = [i for i in items if not limit.include or any(i.matches(p) for p in limit.include)]
    chosen = [i for i in chosen if all(i.matches(p) for p in limit.intersect)]
    return [i for i in chosen if not any(i.matches(p) for p in limit.exclude)]
