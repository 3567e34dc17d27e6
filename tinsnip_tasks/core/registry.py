"""The station's machine registry: ``name=NN`` lines mapping machine names to numbers.

The one rule for machine numbers lives here; pure text in, data out. Reading the file and
writing it back under its lock is the caller's job (plans/registry.py), and every decision
(which number, whether a pin fits, the file's normal form) is made here.

- 00 is the station's, always, and nobody else's; a machine called ``station`` is refused.
- A registry with no machine in it (missing, empty, or only ``station=00``) is not
  authoritative: the built-in :data:`DEFAULT_MACHINES` apply. Otherwise the registry alone
  decides.
- A pinned number must agree with the registry in force: the machine is not listed with another
  number and no other machine has it. Pins are written into the registry by the setup tasks.
- A new machine gets the lowest number from 04 to 99 that the registry in force and the
  inventory's pins leave free.
- Normal form: one ``name=NN`` line per machine, two digits, sorted by number, ``\\n`` line
  ends, a final newline, no comments. Parsing also accepts CRLF, spaces around ``=``, one-digit
  numbers, a missing final newline, ``#`` comments and a line repeated word for word; writing
  always gives the normal form.
"""

import re

from tinsnip_tasks.core.smep import validate_name
from tinsnip_tasks.errors import InputError

STATION = "station"
#: Machine numbers in force while a sheet's registry has no machine in it.
DEFAULT_MACHINES = {"station": 0, "gazette": 1, "lldap": 2, "gateway": 3}
#: Numbers handed out to new machines (00..03 are the station and the defaults).
FIRST_FREE, LAST = 4, 99

_LINE_RE = re.compile(r"[ \t]*([^=\s]*)[ \t]*=[ \t]*([0-9]{1,3})[ \t]*")


def parse_registry(text: str, source: str = "machine-registry") -> dict[str, int]:
    """Parse registry text into ``{name: number}``.

    :param str text: the file's content.
    :param str source: where the text came from, for messages.
    :raises InputError: on a malformed line, a bad name, a number outside 0..99, a number 00
        for anything but the station, a name with two numbers or a number with two names.
    """
    entries: dict[str, int] = {}
    owner: dict[int, str] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source}, line {lineno}"
        match = _LINE_RE.fullmatch(line)
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
            raise InputError(f"{where}: the station is always 00, not {number:02d}; write station=00")
        if number == 0 and name != STATION:
            raise InputError(f"{where}: 00 belongs to the station, not {name!r};"
                             f" give {name!r} a number {FIRST_FREE:02d}..{LAST}")
        if name in entries and entries[name] != number:
            raise InputError(
                f"{where}: {name!r} is listed again with {number:02d} (first as"
                f" {entries[name]:02d}); keep one line"
            )
        if number in owner and owner[number] != name:
            raise InputError(
                f"{where}: number {number:02d} is given to both {owner[number]!r} and {name!r};"
                " give each machine its own number"
            )
        entries[name] = number
        owner[number] = name
    return entries


def format_registry(entries: dict[str, int]) -> str:
    """Return the normal form: one ``name=NN`` line per entry, sorted by number."""
    return "".join(f"{name}={number:02d}\n" for name, number in
                   sorted(entries.items(), key=lambda item: (item[1], item[0])))


def authoritative(registry: dict | None) -> bool:
    """Whether ``registry`` decides the numbers: it lists at least one machine."""
    return bool(registry) and any(name != STATION for name in registry)


def in_force(registry: dict | None) -> dict[str, int]:
    """The table that decides: ``registry`` when authoritative, else the built-in defaults."""
    return dict(registry) if authoritative(registry) else dict(DEFAULT_MACHINES)


def lookup(name: str, registry: dict | None) -> int | None:
    """Return the machine number of ``name`` in the table in force, or None."""
    if name == STATION:
        return 0
    return in_force(registry).get(name)


def check_pin(name: str, pin: int, registry: dict | None, *, source: str = "the registry") -> None:
    """Refuse a pinned number that disagrees with the table in force.

    :raises InputError: naming the machine, the pin and who else holds it.
    """
    table = in_force(registry)
    where = source if authoritative(registry) else "the built-in defaults"
    if name == STATION:
        if pin != 0:
            raise InputError(f"the station is always 00, not {pin:02d}; remove its number")
        return
    if pin == 0:
        raise InputError(f"machine {name!r} is pinned to 00, which belongs to the station;"
                         f" pin a number {FIRST_FREE:02d}..{LAST}")
    listed = table.get(name)
    if listed is not None and listed != pin:
        raise InputError(f"machine {name!r} is pinned to {pin:02d} in the inventory but"
                         f" {where} gives it {listed:02d}; make the two agree")
    for other, number in table.items():
        if other != name and number == pin:
            raise InputError(f"machine {name!r} is pinned to {pin:02d} in the inventory but"
                             f" {where} gives {pin:02d} to {other!r}; pin a free number")


def resolve(name: str, registry: dict | None, pin: int | None = None) -> int | None:
    """The number of ``name``: its pin (checked against the table in force), else the table's
    entry, else None (no number yet)."""
    validate_name("machine", name)
    if pin is not None:
        check_pin(name, pin, registry)
        return pin
    return lookup(name, registry)


def next_free(registry: dict | None, reserved=()) -> int:
    """Return the lowest number from 04 to 99 that no machine in the table in force uses and
    that is not in ``reserved`` (numbers pinned in the inventory).

    :raises InputError: when all of them are taken.
    """
    used = set(in_force(registry).values()) | set(reserved)
    for number in range(FIRST_FREE, LAST + 1):
        if number not in used:
            return number
    raise InputError(
        f"no free machine number left ({FIRST_FREE:02d}..{LAST} are all used);"
        " remove machines that are gone from the registry or start a new sheet"
    )


def assign(name: str, registry: dict | None, pin: int | None = None,
           reserved=()) -> tuple[int, dict, bool]:
    """Return ``(number, registry, changed)`` for ``name``.

    A machine the table in force already numbers keeps its number (``changed`` False; with
    ``pin`` it must agree). Otherwise the pin, or else the next free number (skipping
    ``reserved``), is added to a copy of the table in force (``changed`` True): so the first
    machine added to a registry that is not authoritative yet also writes the defaults. The
    given dict is never modified.
    """
    validate_name("machine", name)
    if name == STATION:
        if pin not in (None, 0):
            check_pin(name, pin, registry)
        return 0, dict(registry or {}), False
    number = resolve(name, registry, pin)
    table = in_force(registry)
    if table.get(name) is not None:
        return table[name], dict(registry or {}), False
    if number is None:
        number = next_free(registry, reserved)
    updated = {k: v for k, v in table.items() if k != STATION}
    updated[name] = number
    return number, updated, True


def seed(text: str, source: str = "machine-registry") -> str:
    """The registry text after a station setup: a registry with machines in it is kept as it
    is (after checking it); one without gets the built-in defaults in normal form."""
    if authoritative(parse_registry(text, source)):
        return text
    return format_registry({k: v for k, v in DEFAULT_MACHINES.items() if k != STATION})


def with_entry(text: str, name: str, pin: int | None = None, reserved=(),
               source: str = "machine-registry") -> tuple[int, dict, str]:
    """``(number, registry, new text)`` for ``name`` in the registry ``text`` (missing file:
    ``""``).

    The text is parsed and checked, then, only when ``name`` needs an entry, written back in
    normal form with it; otherwise it comes back unchanged. ``registry`` is the table the new
    text holds.
    """
    registry = parse_registry(text, source)
    number, updated, changed = assign(name, registry, pin, reserved)
    if not changed:
        return number, registry, text
    return number, updated, format_registry(updated)
