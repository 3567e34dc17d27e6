"""The station's machine registry: ``name=NN`` lines mapping machine names to numbers.

Pure text in, data out; reading and writing the file (under a lock) is the caller's job.
"""

import re

from tinsnip_tasks.core.smep import validate_name
from tinsnip_tasks.errors import InputError

STATION = "station"
#: Machine numbers used when a sheet has no registry file yet.
DEFAULT_MACHINES = {"station": 0, "gazette": 1, "lldap": 2, "gateway": 3}
#: Numbers handed out to new machines (00..03 are the station and the defaults).
FIRST_FREE, LAST = 4, 99

_LINE_RE = re.compile(r"^\s*([^=\s]*)\s*=\s*([0-9]+)\s*$")


def parse_registry(text: str, source: str = "machine-registry") -> dict[str, int]:
    """Parse registry text into ``{name: number}``.

    Blank lines and ``#`` comments are ignored.

    :param str text: the file's content.
    :param str source: where the text came from, for messages.
    :raises InputError: on a malformed line, a bad name, a number outside 0..99,
        a name listed twice or a number given to two names.
    """
    entries: dict[str, int] = {}
    owner: dict[int, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {lineno}"
        match = _LINE_RE.match(line)
        if not match:
            raise InputError(f"{where}: {line!r} is not a 'name=NN' line; fix or remove it")
        name, number = match.group(1), int(match.group(2))
        try:
            validate_name("machine", name)
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        if number > LAST:
            raise InputError(f"{where}: number {number} for {name!r} is outside 0..{LAST}")
        if name == STATION and number != 0:
            raise InputError(f"{where}: the station is always 00, not {number}; write station=00")
        if name in entries:
            raise InputError(
                f"{where}: {name!r} is listed again (first as {entries[name]:02d}); keep one line"
            )
        if number in owner:
            raise InputError(
                f"{where}: number {number:02d} is given to both {owner[number]!r} and {name!r};"
                " give each machine its own number"
            )
        entries[name] = number
        owner[number] = name
    return entries


def format_registry(entries: dict[str, int]) -> str:
    """Return registry text: one ``name=NN`` line per entry, sorted by number."""
    return "".join(f"{name}={number:02d}\n" for name, number in
                   sorted(entries.items(), key=lambda item: (item[1], item[0])))


def lookup(name: str, registry: dict | None) -> int | None:
    """Return the machine number of ``name``, or None when it has none yet.

    The station is always 0.  A given registry (even an empty one) is authoritative
    for every other name; without one, :data:`DEFAULT_MACHINES` applies.
    """
    if name == STATION:
        return 0
    table = DEFAULT_MACHINES if registry is None else registry
    return table.get(name)


def next_free(registry: dict) -> int:
    """Return the lowest number from 04 to 99 that no machine in ``registry`` uses.

    :raises InputError: when all of them are taken.
    """
    used = set(registry.values())
    for number in range(FIRST_FREE, LAST + 1):
        if number not in used:
            return number
    raise InputError(
        f"no free machine number left ({FIRST_FREE:02d}..{LAST} are all used);"
        " remove machines that are gone from the registry or start a new sheet"
    )


def assign(name: str, registry: dict) -> tuple[int, dict, bool]:
    """Return ``(number, registry, changed)`` for ``name``.

    An existing entry is returned as is (``changed`` False); otherwise the next free
    number is added to a copy of the registry (``changed`` True).  The given dict is
    never modified.
    """
    validate_name("machine", name)
    if name == STATION:
        return 0, dict(registry), False
    if name in registry:
        return registry[name], dict(registry), False
    number = next_free(registry)
    updated = dict(registry)
    updated[name] = number
    return number, updated, True
