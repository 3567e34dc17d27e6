"""The station's machine registry on the NAS, as commands and resources.

The shell side only reads the file, and writes it back whole under its one lock
(``PATH.tinsnip-lock``, the lock of every :class:`Edited` file) after checking that it still
has the content that was read; every decision is made in Python by :mod:`core.registry`. Two
setups at once: the second finds the file changed under the lock, reads it again and decides
again, so two machines never get one number.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..core import registry as reg
from ..ops.base import q
from ..ops.resources import Directory, Edited

MISSING = "@@missing"
PRESENT = "@@registry"


def read_command(path: str) -> str:
    """Print the registry behind a marker, or a marker saying there is none."""
    p = q(path)
    return f"if [ -f {p} ]; then echo {PRESENT}; cat {p}; else echo {MISSING}; fi"


def parse_output(out: str, path: str) -> dict | None:
    """The registry read by :func:`read_command`; None when the NAS has no registry file."""
    head, _, body = out.partition("\n")
    if head.strip() == MISSING:
        return None
    if head.strip() != PRESENT:
        raise ValueError(f"unexpected output reading {path}: {head[:80]!r}")
    return reg.parse_registry(body, source=path)


@dataclass(frozen=True)
class RegistryEntry(Edited):
    """``name`` has its number in the registry file: its pin, else the lowest free one. The
    number decided by the last plan is in :attr:`number` (in a dry run too)."""

    name: str = ""
    result: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def number(self) -> int | None:
        return self.result.get("number")

    @property
    def registry(self) -> dict | None:
        """The registry as the last plan left it (or would leave it, in a dry run)."""
        return self.result.get("registry")

    def describe(self):
        if self.number is None:
            return f"number of {self.name} in {self.path}"
        if not reg.authoritative(self.registry):  # nothing written: the file may not exist
            return (f"{self.name}={self.number:02d} (built-in default; {self.path} lists no "
                    f"machine, nas.station seeds it)")
        return f"{self.name}={self.number:02d} in {self.path}"


def entry(path: str, name: str, pin: int | None = None, reserved=()) -> list:
    """The registry's folder and ``name``'s entry in it (the last resource, a
    :class:`RegistryEntry`). ``reserved``: numbers pinned in the inventory for other machines
    of the sheet, never handed out."""
    result: dict = {}

    def edit(text: str) -> str:
        result["number"], result["registry"], new = reg.with_entry(
            text, name, pin, tuple(reserved), source=path)
        return new

    return [Directory(posixpath.dirname(path)),
            RegistryEntry(path, edit, f"number of {name}", name=name, result=result)]


def station_registry(path: str) -> Edited:
    """The station's registry: checked, and seeded with the built-in numbers when it has no
    machine in it yet; entries already there are kept."""
    return Edited(path, lambda text: reg.seed(text, source=path), "machine registry")
