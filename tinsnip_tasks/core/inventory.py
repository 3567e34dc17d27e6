"""The inventory: sheets, NAS units and machines of a homelab, loaded from one YAML file.

Loading validates everything that can be checked without a host: names, references,
environments, port indexes, paths, and every SMEP number known without a registry.
Each error names the file, the dotted key and what to change.
"""

import os
import re
import stat
import unicodedata
from collections.abc import Hashable
from dataclasses import dataclass, replace

import yaml

from tinsnip_tasks.core import context
from tinsnip_tasks.core import registry as reg
from tinsnip_tasks.core.smep import (
    ENVIRONMENTS,
    NAME_RE,
    USER_NAME_MAX,
    Smep,
    env_number,
    make_smep,
    sheet_number,
)
from tinsnip_tasks.core.target import (address_of, check_address, check_target, host_address,
                                       split_target)
from tinsnip_tasks.errors import InputError, InventoryError

DEFAULT_PATH = "inventory.yaml"
DEFAULT_VOLUME = "/volume1"
DEFAULT_REGISTRY = "{volume}/{sheet}/station/{env}/machine-registry"
#: Keys an inventory used to have and no longer does, with what to do instead.
RETIRED_KEYS = {"kind": "tinsnip treats every NAS alike (an NFS server with /etc/exports and "
                        "exportfs); remove this line"}

TOP_KEYS = ("sheets", "nas", "machines")
SHEET_KEYS = ("nas", "volume", "number", "registry", "docker")
NAS_KEYS = ("host", "address")
MACHINE_KEYS = ("sheet", "host", "address", "environments", "number", "services", "docker")
DOCKER_KEYS = ("registry_mirrors", "insecure_registries")

_PATH_PART_RE = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DockerSettings:
    """Settings of the machine users' rootless daemons (``docker:`` of a sheet or machine),
    written to each daemon's ``daemon.json``. None: not given at this level."""

    registry_mirrors: tuple | None = None
    insecure_registries: tuple | None = None

    def over(self, base: "DockerSettings | None") -> "DockerSettings":
        """These settings, each key not given here taken from ``base`` (the sheet's)."""
        if base is None:
            return self
        return DockerSettings(*(mine if mine is not None else theirs for mine, theirs in
                                zip(self.values(), base.values())))

    def values(self) -> tuple:
        return (self.registry_mirrors, self.insecure_registries)

    def daemon_config(self) -> dict:
        """The keys of ``daemon.json`` (Docker's spelling) that are given."""
        return {k.replace("_", "-"): list(v) for k, v in zip(DOCKER_KEYS, self.values())
                if v is not None}


@dataclass(frozen=True)
class Nas:
    """A NAS unit that holds the sheets' volumes and exports them over NFS."""

    name: str
    host: str
    address: str | None = None  # what the machines mount from; None: from the SSH target


@dataclass(frozen=True)
class Sheet:
    """A sheet: a namespace of machines on one NAS volume."""

    name: str
    nas: str
    volume: str
    number: int | None
    registry: str
    docker: DockerSettings | None = None

    @property
    def resolved_number(self) -> int:
        """The SMEP sheet number: the pin, else the hash of the name."""
        return sheet_number(self.name, self.number)

    def registry_file(self, env: str) -> str:
        """The path on the NAS of the sheet's machine registry for ``env`` (a valid name)."""
        return self.registry.format(volume=self.volume, sheet=self.name, env=env)


@dataclass(frozen=True)
class Service:
    """A service on a machine, with its port names mapped to TIN_PORT indexes.

    ``path`` is the service's own folder (long form ``{path: DIR, ports: {...}}``), None for a
    catalog service; ``forward`` holds ``(standard port, port name, environment)`` triples.
    """

    name: str
    ports: dict[str, int]
    path: str | None = None
    forward: tuple = ()
    wait: int | None = None  # seconds a deploy waits for it to be healthy (long form ``wait:``)


@dataclass(frozen=True)
class Machine:
    """A machine: a set of services run by one user per environment on one host."""

    name: str
    sheet: str
    host: str
    environments: tuple
    number: int | None
    services: dict[str, Service]
    docker: DockerSettings | None = None
    address: str | None = None  # what the NAS exports to; None: from the SSH target

    @property
    def known_number(self) -> int | None:
        """The machine's number as known without asking the NAS: its pin, else the built-in
        default (None for a machine whose number the station registry assigns)."""
        return reg.resolve(self.name, None, self.number)

    @property
    def client(self) -> str:
        """What the NAS exports this machine's folders to: its ``address`` (see
        :meth:`Inventory.with_addresses`), else its host's name."""
        return self.address or host_address(self.host)


@dataclass(frozen=True)
class MachineEnv:
    """One machine-environment, resolved from the inventory once: everything a task's steps
    need that the inventory decides (the SMEP numbers come from the station registry, see
    :meth:`smep`). Made by :meth:`Inventory.machine_env`, which validates the names."""

    machine: Machine
    env: str
    sheet: Sheet
    nas: Nas
    #: the SSH target of the machine host and of the NAS (``fab -H`` may replace either)
    host: str
    nas_host: str
    #: the station registry (path on the NAS) that numbers the sheet's machines in ``env``
    registry: str
    #: the machine-environment's folder on the NAS
    export_dir: str
    #: numbers pinned in the inventory for the sheet's other machines: ``{number: machine}``
    others: dict

    @property
    def name(self) -> str:
        return f"{self.machine.name}-{self.env}"

    @property
    def key(self) -> tuple[str, str]:
        return self.machine.name, self.env

    def smep(self, registry: dict | None = None) -> Smep:
        """The SMEP numbers, the machine's number being its pin, else its entry in
        ``registry`` (None, or a registry without machines: the built-in defaults).

        :raises InputError: the machine has no number yet, or its pin disagrees with the
            registry.
        """
        number = reg.resolve(self.machine.name, registry, self.machine.number)
        if number is None:
            raise InputError(
                f"machine {self.machine.name!r} has no number yet in sheet {self.sheet.name!r}"
                f" ({self.env}): run machine.setup, which assigns one from the station registry"
                f" {self.registry}, or pin one (machines: {self.machine.name}: number: NN)"
            )
        return make_smep(self.sheet.name, self.machine.name, self.env, number,
                         pinned_sheet_no=self.sheet.number)

    def known(self) -> Smep | None:
        """The numbers as known without asking the NAS (:attr:`Machine.known_number`), or
        None."""
        return self.smep() if self.machine.known_number is not None else None

    def provisional(self) -> Smep:
        """The numbers known without asking the NAS, else those an empty registry would give
        (for checks and plans made before, or without, reading the registry)."""
        if self.machine.known_number is not None:
            return self.smep()
        return self.smep(reg.assign(self.machine.name, None, None, self.others)[1])

    @property
    def client(self) -> str:
        """The client the NAS exports to (:attr:`Machine.client`)."""
        return self.machine.client

    @property
    def nas_address(self) -> str:
        """The address the machine host mounts the export from: the NAS's ``address``, else
        its host's name."""
        return self.nas.address or host_address(self.nas.host)

    @property
    def docker(self) -> DockerSettings:
        """The daemon settings of the machine's users: the machine's ``docker:`` keys over its
        sheet's."""
        return (self.machine.docker or DockerSettings()).over(self.sheet.docker)


@dataclass(frozen=True)
class Inventory:
    """The whole inventory; look-ups raise errors that list what is known."""

    path: str
    sheets: dict[str, Sheet]
    nas: dict[str, Nas]
    machines: dict[str, Machine]
    #: the operator's age identity file, for encrypted secrets files (``tinsnip.age_identity``)
    age_identity: str | None = None

    def machine(self, name: str) -> Machine:
        """Return the machine called ``name``.

        :raises InputError: when the inventory has no such machine.
        """
        if name not in self.machines:
            known = ", ".join(sorted(self.machines)) or "none"
            raise InputError(
                f"machine {name!r} is not in {self.path}; known machines: {known}"
            )
        return self.machines[name]

    def sheet_of(self, machine_name: str) -> Sheet:
        """Return the sheet a machine belongs to."""
        return self.sheets[self.machine(machine_name).sheet]

    def nas_of(self, machine_name: str) -> Nas:
        """Return the NAS that holds a machine's sheet."""
        return self.nas[self.sheet_of(machine_name).nas]

    def machine_env(self, machine_name: str, env: str, *, host: str | None = None,
                    nas_host: str | None = None) -> MachineEnv:
        """The :class:`MachineEnv` of a machine in ``env``, validated once; ``host`` and
        ``nas_host`` replace the inventory's SSH targets (``fab -H``).

        :raises InputError: an unknown machine or environment, named with what is known.
        """
        self.check_env(machine_name, env)
        machine = self.machines[machine_name]
        sheet = self.sheets[machine.sheet]
        nas = self.nas[sheet.nas]
        others = {n: m for n, m in self.pins(sheet.name).items() if m != machine_name}
        return MachineEnv(machine, env, sheet, nas, host or machine.host, nas_host or nas.host,
                          sheet.registry_file(env),
                          f"{sheet.volume}/{sheet.name}/{machine_name}/{env}", others)

    def check_env(self, machine_name: str, env: str) -> None:
        """Raise unless ``env`` is one of the machine's environments.

        :raises InputError: naming the environments the machine has.
        """
        machine = self.machine(machine_name)
        if env not in machine.environments:
            env_number(env)  # an unknown name gets the list of all environments
            raise InputError(
                f"machine {machine_name!r} has no {env!r} environment in {self.path};"
                f" it has: {', '.join(machine.environments)}"
                f" (add it under machines: {machine_name}: environments)"
            )

    def sheet(self, name: str) -> Sheet:
        """Return the sheet called ``name``.

        :raises InputError: when the inventory has no such sheet, listing those it has.
        """
        if name not in self.sheets:
            known = ", ".join(sorted(self.sheets)) or "none"
            raise InputError(f"sheet {name!r} is not in {self.path}; known sheets: {known}")
        return self.sheets[name]

    def registry_path(self, sheet_name: str, env: str) -> str:
        """Return the path on the NAS of a sheet's machine registry for ``env``."""
        sheet = self.sheet(sheet_name)
        env_number(env)
        return sheet.registry_file(env)

    def smep(self, machine_name: str, env: str, registry: dict | None = None) -> Smep:
        """Return the SMEP numbers of a machine-environment.

        The machine number is the machine's pin, else its entry in the registry in force
        (:func:`registry.resolve`; None or a registry without machines means the built-in
        defaults).

        :raises InputError: when the machine or environment is unknown, when the machine
            has no number yet, or when its pin disagrees with the registry.
        """
        return self.machine_env(machine_name, env).smep(registry)

    def pins(self, sheet_name: str) -> dict[int, str]:
        """The machine numbers pinned in the inventory for a sheet: ``{number: machine}``."""
        return {m.number: m.name for m in self.machines.values()
                if m.sheet == sheet_name and m.number is not None}

    def port_owner(self, machine_name: str, port: int) -> str | None:
        """Why ``port`` of the host of ``machine_name`` may not be forwarded, or None: the SSH
        port tinsnip reaches the host on (the target's port, else 22), or a port of the SMEP
        range of a sheet with a machine on that host (any machine-environment there may get
        it; named when the inventory knows its number)."""
        host = self.machine(machine_name).host
        address = address_of(host)
        if port == (split_target(host)[2] or 22):
            return f"the SSH port tinsnip reaches {host} on"
        same = [m for m in self.machines.values() if address_of(m.host) == address]
        for m in same:
            number = m.known_number
            for env in m.environments if number is not None else ():
                try:
                    s = make_smep(m.sheet, m.name, env, number,
                                  pinned_sheet_no=self.sheets[m.sheet].number)
                except InputError:
                    continue
                if port in s.ports:
                    return f"{s.user}'s port TIN_PORT_{port - s.uid}"
        for name in sorted({m.sheet for m in same}):
            low = self.sheets[name].resolved_number * 10000
            if low <= port <= low + 9999:
                return (f"in sheet {name}'s SMEP range {low}..{low + 9999}, from which the "
                        f"machine-environments on {address} get their ports")
        return None

    def export_dir(self, machine: str, env: str) -> str:
        """Return the machine-environment's directory on the NAS."""
        return self.machine_env(machine, env).export_dir

    def with_addresses(self, resolve) -> "Inventory":
        """This inventory with an address for every NAS and machine that has none: what
        ``resolve(name)`` gives for its SSH host (the SSH config's ``HostName``), else the
        host's name.

        :raises InputError: ``resolve`` gives something that is not an address.
        """
        nas = {n: replace(x, address=x.address or host_address(x.host, resolve))
               for n, x in self.nas.items()}
        machines = {n: replace(m, address=m.address or host_address(m.host, resolve))
                    for n, m in self.machines.items()}
        return replace(self, nas=nas, machines=machines)

    def station(self, sheet_name: str, env: str) -> "Station":
        """The station of a sheet in ``env`` (prod or test): its numbers, folder, registry, the
        machine hosts it is exported to, and the NAS that holds it.

        :raises InputError: for an unknown sheet, another environment, or a sheet without
            machines.
        """
        if env not in ("prod", "test"):
            raise InputError(f"the station has prod and test environments, not {env!r}")
        sheet = self.sheet(sheet_name)
        smep = make_smep(sheet_name, reg.STATION, env, 0, pinned_sheet_no=sheet.number)
        clients = sorted({m.client for m in self.machines.values() if m.sheet == sheet_name})
        if not clients:
            raise InputError(f"sheet {sheet_name!r} has no machines in {self.path} to export to")
        return Station(smep, f"{sheet.volume}/{sheet_name}/station/{env}",
                       self.registry_path(sheet_name, env), tuple(clients), self.nas[sheet.nas].host)


@dataclass(frozen=True)
class Station:
    """A sheet's station (machine 00) in one environment."""

    smep: Smep
    folder: str
    registry: str
    clients: tuple
    nas_host: str


#: How deep mappings and lists may nest in the inventory (it needs 6).
MAX_DEPTH = 32
_PLAIN_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (safe_load keeps the last), and
    what an inventory never needs and a reader easily misreads: explicit tags (``!!python/...``,
    ``!custom``, ``!!binary``), anchors and aliases (``&a``, ``*a``: alias bombs), nesting deeper
    than :data:`MAX_DEPTH`, and YAML 1.1's surprising scalars (``yes``/``no``/``on``/``off`` as
    booleans, ``010`` as octal, ``0x1f``, ``1_000``, ``1:20`` as 80)."""

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed in the inventory;"
                " write the value out", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"anchors (&{event.anchor}) are not allowed in the inventory;"
                " write each value out", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None:  # "!" too: PyYAML reads "! 1" as the number 1
            raise yaml.composer.ComposerError(
                None, None, f"tags ({tag}) are not allowed in the inventory; write plain values",
                event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _plain_int(loader, node):
    if not _PLAIN_INT_RE.fullmatch(node.value):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is a number written in a way YAML 1.1 reads differently"
            " from YAML 1.2 (octal, hex, binary, '_' or base 60); write a plain decimal number,"
            " or quote it for a string", node.start_mark)
    return int(node.value)


def _plain_bool(loader, node):
    if node.value.lower() not in ("true", "false"):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is read as a boolean by YAML 1.1; write true or false,"
            f" or quote it ('{node.value}') for a string", node.start_mark)
    return node.value.lower() == "true"


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _plain_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:bool", _plain_bool)


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            break  # construct_mapping reports unhashable keys itself
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping; keep one", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


class _Checker:
    """Validation helpers that raise InventoryError with the file and the dotted key."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, problem: str):
        raise InventoryError(self.path, _one_line(key, 120), _one_line(problem))

    def mapping(self, key: str, value, allowed=None, *, required=()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {_kind(value)} {value!r}")
        if allowed is not None:
            unknown = [k for k in value if k not in allowed]
            if unknown:
                self.fail(
                    key,
                    f"unknown key {', '.join(repr(k) for k in unknown)};"
                    f" allowed keys: {', '.join(allowed)}",
                )
        for name in required:
            if name not in value or value[name] is None:
                self.fail(f"{key}.{name}" if key else name, "is required")
        return value

    def name(self, key: str, kind: str, value) -> str:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            foreign = [c for c in value if not c.isascii()] if isinstance(value, str) else []
            why = (f" (it holds {foreign[0]!r}, {unicodedata.name(foreign[0], 'U+%04X' % ord(foreign[0]))},"
                   " which only looks like a letter)" if foreign else "")
            self.fail(
                key,
                f"{kind} name {_shown(value)} is not valid{why}: use 1-32 lowercase ASCII"
                " letters, digits or '-', starting with a letter",
            )
        return value

    def integer(self, key: str, value, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(key, f"{value!r} is not valid: use an integer {low}..{high}")
        return value

    def ssh_target(self, key: str, value) -> str:
        try:
            return check_target(value)
        except InputError as err:
            self.fail(key, str(err))

    def address(self, key: str, value) -> str | None:
        if value is None:
            return None
        try:
            return check_address(value)
        except InputError as err:
            self.fail(key, str(err))

    def retired(self, key: str, body) -> None:
        for name, hint in RETIRED_KEYS.items():
            if isinstance(body, dict) and name in body:
                self.fail(f"{key}.{name}", hint)

    def abs_path(self, key: str, value) -> str:
        parts = value.split("/")[1:] if isinstance(value, str) and value.startswith("/") else []
        if not parts or any(p in ("", ".", "..") or not _PATH_PART_RE.fullmatch(p) for p in parts):
            self.fail(
                key,
                f"{value!r} is not valid: use an absolute path such as /volume1 made of"
                " letters, digits, '.', '_' and '-' (no trailing '/', no '..')",
            )
        return value


def _shown(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(text: str, limit: int = 400) -> str:
    """``text`` with every character that is not printable escaped (a message is one line)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value) -> str:
    return {
        type(None): "nothing", bool: "a boolean", int: "a number", float: "a number",
        str: "a string", list: "a list", dict: "a mapping",
    }.get(type(value), type(value).__name__)


#: The largest inventory file read (a homelab's is a few kilobytes).
MAX_BYTES = 1 << 20


def _read(path: str):
    try:  # O_NONBLOCK and a regular file only: a FIFO or a device is refused, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InventoryError(path, None, "is not a regular file")
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise InventoryError(path, None, f"is larger than {MAX_BYTES} bytes")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InventoryError(
            path, None,
            "no such file; create it (see the README) or point TINSNIP_INVENTORY (the setting"
            " tinsnip.inventory) at your inventory",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InventoryError(path, None, f"cannot be read: {err}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise InventoryError(path, None,
                             _one_line(f"is not valid YAML: {where}{problem}")) from None
    if not isinstance(data, dict):
        what = "is empty" if data is None else f"holds {_kind(data)}"
        raise InventoryError(
            path, None, f"{what}; it must be a mapping with the keys {', '.join(TOP_KEYS)}"
        )
    return data


def _parse_nas(check: _Checker, raw) -> dict[str, Nas]:
    result = {}
    for name, body in check.mapping("nas", raw).items():
        key = f"nas.{name}"
        check.name(key, "NAS", name)
        check.retired(key, body)
        body = check.mapping(key, body, NAS_KEYS, required=("host",))
        host = check.ssh_target(f"{key}.host", body["host"])
        result[name] = Nas(name, host, check.address(f"{key}.address", body.get("address")))
    return result


def _parse_sheets(check: _Checker, raw, nas: dict[str, Nas]) -> dict[str, Sheet]:
    result = {}
    for name, body in check.mapping("sheets", raw).items():
        key = f"sheets.{name}"
        check.name(key, "sheet", name)
        body = check.mapping(key, body, SHEET_KEYS, required=("nas",))
        nas_name = body["nas"]
        if not isinstance(nas_name, str) or nas_name not in nas:
            known = ", ".join(sorted(nas)) or "none"
            check.fail(f"{key}.nas", f"{nas_name!r} is not defined under nas: (defined: {known})")
        volume = check.abs_path(f"{key}.volume", body.get("volume", DEFAULT_VOLUME))
        number = body.get("number")
        if number is not None:
            check.integer(f"{key}.number", number, 1, 9)
        registry = body.get("registry", DEFAULT_REGISTRY)
        if not isinstance(registry, str):
            check.fail(f"{key}.registry", f"expected a path string, got {_kind(registry)}")
        sample = _fill_registry(check, f"{key}.registry", registry, volume, name)
        check.abs_path(f"{key}.registry", sample)
        if not sample.startswith(volume.rstrip("/") + "/"):
            check.fail(f"{key}.registry", f"{registry!r} gives {sample}, outside the sheet's"
                                          f" volume {volume}; keep it under {{volume}}/")
        docker = _parse_docker(check, f"{key}.docker", body["docker"]) if "docker" in body else None
        result[name] = Sheet(name, nas_name, volume, number, registry, docker)
    owners: dict[int, Sheet] = {}
    for sheet in result.values():
        number = sheet.resolved_number
        if number in owners:
            first = owners[number]
            movable = first if sheet.number is not None and first.number is None else sheet
            used = {s.resolved_number for s in result.values()}
            free = [str(n) for n in range(1, 7) if n not in used] or ["none"]
            check.fail(
                f"sheets.{sheet.name}",
                f"sheets {first.name!r} and {sheet.name!r} both get number {number};"
                f" pin one of them to a free number (sheets: {movable.name}: number: N;"
                f" free: {', '.join(free)})",
            )
        owners[number] = sheet
    return result


_HOST_RE = (r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)")
_PORT_RE = r"(?::(?:[1-9][0-9]{0,4}))"
MIRROR_RE = re.compile(rf"https?://{_HOST_RE}{_PORT_RE}?/?")
INSECURE_RE = re.compile(rf"{_HOST_RE}{_PORT_RE}?|(?:[0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}/[0-9]{{1,2}}")


def _port_in_range(value: str) -> bool:
    port = re.search(r":([0-9]+)/?$", value)
    return port is None or 1 <= int(port.group(1)) <= 65535


def _parse_docker(check: _Checker, key: str, raw) -> DockerSettings:
    """``docker: {registry_mirrors: [URL], insecure_registries: [HOST:PORT]}``."""
    body = check.mapping(key, raw, DOCKER_KEYS)
    rules = {
        "registry_mirrors": (MIRROR_RE, "a registry URL such as http://10.0.0.5:5000 (http or "
                                        "https, a host name or IPv4 address, an optional port)"),
        "insecure_registries": (INSECURE_RE, "a registry's host:port such as 10.0.0.5:5000, or "
                                             "an IPv4 network such as 10.0.0.0/24"),
    }
    values = {}
    for name, (pattern, what) in rules.items():
        if name not in body:
            continue
        items = body[name]
        if items is None:
            items = []
        if not isinstance(items, list):
            check.fail(f"{key}.{name}", f"expected a list, got {_kind(items)} {items!r}")
        for i, item in enumerate(items):
            if not (isinstance(item, str) and pattern.fullmatch(item) and _port_in_range(item)):
                check.fail(f"{key}.{name}[{i}]", f"{item!r} is not valid: use {what}")
            if item in items[:i]:
                check.fail(f"{key}.{name}[{i}]", f"{item!r} is listed twice; list it once")
        values[name] = tuple(items)
    return DockerSettings(**values)


def _fill_registry(check: _Checker, key: str, registry: str, volume: str, sheet: str) -> str:
    """``registry`` with ``{volume}``, ``{sheet}`` and ``{env}`` filled in (prod), or an error:
    nothing else may stand in braces (no attribute, index, conversion or format spec)."""
    import string

    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(registry)
                  if f is not None and (f not in ("volume", "sheet", "env") or spec or conv)]
    except ValueError as err:
        fields = [str(err)]
    if fields:
        check.fail(key, f"{registry!r} cannot be filled in ({fields[0]!r}); only {{volume}},"
                        " {sheet} and {env} may appear in braces")
    return registry.format(volume=volume, sheet=sheet, env="prod")


SERVICE_KEYS = ("path", "ports", "forward", "wait")
MAX_WAIT = 3600  # seconds
FORWARD_KEYS = ("to", "env")
SERVICE_FILES = ("docker-compose.yml", "docker-compose.yml.j2")


def _is_long_form(body) -> bool:
    """``{path: DIR, ports: {...}}`` rather than ``{port name: index}``."""
    return isinstance(body, dict) and any(
        k in SERVICE_KEYS and not isinstance(v, int) for k, v in body.items()
    )


def _service_path(check: _Checker, key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        check.fail(key, f"expected a folder path, got {_kind(value)} {value!r}")
    base = os.path.dirname(os.path.abspath(check.path))
    path = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    if not os.path.isdir(path):
        check.fail(key, f"{value!r} is not a folder ({path}); paths are relative to the inventory")
    found = False
    for name in SERVICE_FILES:
        try:  # lstat: a link is refused, never followed; a FIFO is not opened
            mode = os.lstat(os.path.join(path, name)).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            try:
                context.refuse(os.path.join(path, name), mode)
            except InputError as err:
                check.fail(key, str(err))
        found = True
    if not found:
        check.fail(key, f"{path} has no {' or '.join(SERVICE_FILES)}")
    return path


def _parse_forward(check: _Checker, key: str, raw, ports: dict, envs: list) -> tuple:
    result = []
    for port, target in check.mapping(key, raw).items():
        fkey = f"{key}.{port}"
        check.integer(fkey, port, 1, 65535)
        env = None
        if isinstance(target, dict):
            target = check.mapping(fkey, target, FORWARD_KEYS, required=("to",))
            env, target = target.get("env"), target["to"]
        if not isinstance(target, str) or target not in ports:
            check.fail(fkey, f"{target!r} is not one of this service's ports"
                             f" ({', '.join(ports) or 'none'})")
        if env is None:
            if len(envs) != 1:
                check.fail(fkey, "the machine has several environments; say which one gets the"
                                 f" port: {port}: {{to: {target}, env: prod}}")
            env = envs[0]
        if not isinstance(env, str) or env not in envs:
            check.fail(fkey, f"{env!r} is not one of the machine's environments"
                             f" ({', '.join(envs)})")
        result.append((port, target, env))
    return tuple(result)


def _parse_services(check: _Checker, key: str, raw, catalog, envs=()) -> dict[str, Service]:
    result = {}
    for name, body in check.mapping(key, raw).items():
        skey = f"{key}.{name}"
        check.name(skey, "service", name)
        path, forward_raw, ports, wait = None, None, body, None
        if _is_long_form(body):
            body = check.mapping(skey, body, SERVICE_KEYS)
            if body.get("path") is not None:
                path = _service_path(check, f"{skey}.path", body["path"])
            ports, forward_raw = body.get("ports"), body.get("forward")
            if body.get("wait") is not None:
                wait = check.integer(f"{skey}.wait", body["wait"], 0, MAX_WAIT)
            skey_ports = f"{skey}.ports"
        else:
            skey_ports = skey
        if path is None and catalog is not None and name not in catalog:
            check.fail(
                skey,
                f"{name!r} is not in the catalog;"
                f" available: {', '.join(sorted(catalog)) or 'none'}"
                " (or give its own folder: {path: DIR, ports: {...}})",
            )
        ports = check.mapping(skey_ports, ports)
        seen: dict[int, str] = {}
        for port_name, index in ports.items():
            pkey = f"{skey_ports}.{port_name}"
            if port_name == "wait" and skey_ports == skey:
                check.fail(pkey, "wait: goes in the long form: {ports: {NAME: INDEX}, wait: SECONDS}")
            check.name(pkey, "port", port_name)
            check.integer(pkey, index, 0, 9)
            if index in seen:
                check.fail(
                    pkey,
                    f"TIN_PORT index {index} is already used by {seen[index]!r};"
                    " give each port its own index 0..9",
                )
            seen[index] = port_name
        forward = _parse_forward(check, f"{skey}.forward", forward_raw, ports, list(envs)) \
            if forward_raw is not None else ()
        result[name] = Service(name, dict(ports), path, forward, wait)
    return result


def _parse_machines(check: _Checker, raw, sheets: dict[str, Sheet], catalog) -> dict[str, Machine]:
    result = {}
    pinned: dict[tuple[str, int], str] = {}
    for name, body in check.mapping("machines", raw).items():
        key = f"machines.{name}"
        check.name(key, "machine", name)
        if name == reg.STATION:
            check.fail(key, "'station' is reserved for the sheet's station (machine 00, set up"
                            " with nas.station); give this machine another name")
        body = check.mapping(key, body, MACHINE_KEYS, required=("sheet", "host", "environments"))
        sheet = body["sheet"]
        if not isinstance(sheet, str) or sheet not in sheets:
            known = ", ".join(sorted(sheets)) or "none"
            check.fail(f"{key}.sheet", f"{sheet!r} is not defined under sheets: (defined: {known})")
        host = check.ssh_target(f"{key}.host", body["host"])
        envs = body["environments"]
        if not isinstance(envs, list) or not envs:
            check.fail(
                f"{key}.environments",
                f"expected a non-empty list such as [prod, test], got {_kind(envs)}",
            )
        for i, env in enumerate(envs):
            if not isinstance(env, str) or env not in ENVIRONMENTS:
                check.fail(
                    f"{key}.environments[{i}]",
                    f"{env!r} is not an environment; use one of {', '.join(ENVIRONMENTS)}",
                )
            if env in envs[:i]:
                check.fail(f"{key}.environments[{i}]", f"{env!r} is listed twice; list it once")
            if len(name) + 1 + len(env) > USER_NAME_MAX:  # before any number is taken for it
                check.fail(key, f"machine name {name!r} is too long: its user {name}-{env} would"
                                f" have {len(name) + 1 + len(env)} characters and Linux allows"
                                f" {USER_NAME_MAX}; shorten it to"
                                f" {USER_NAME_MAX - 1 - len(env)} at most")
        number = body.get("number")
        if number is not None:
            check.integer(f"{key}.number", number, 0, 99)
            try:  # the numbers in force before a sheet's registry lists any machine
                reg.check_pin(name, number, None)
            except InputError as err:
                check.fail(f"{key}.number", str(err))
            if (sheet, number) in pinned:
                check.fail(
                    f"{key}.number",
                    f"number {number} is already pinned for {pinned[(sheet, number)]!r} in"
                    f" sheet {sheet!r}; pin a different number",
                )
            pinned[(sheet, number)] = name
        services = _parse_services(check, f"{key}.services", body.get("services"), catalog, envs)
        docker = _parse_docker(check, f"{key}.docker", body["docker"]) if "docker" in body else None
        address = check.address(f"{key}.address", body.get("address"))
        result[name] = Machine(name, sheet, host, tuple(envs), number, services, docker, address)
    return result


def _check_numbers(check: _Checker, inventory: Inventory) -> None:
    """Every machine-environment whose number is known without a registry must fit."""
    for machine in inventory.machines.values():
        sheet = inventory.sheets[machine.sheet]
        number = machine.known_number
        if number is None:
            continue
        for env in machine.environments:
            try:
                make_smep(sheet.name, machine.name, env, number, pinned_sheet_no=sheet.number)
            except InputError as err:
                check.fail(f"machines.{machine.name}", str(err))


def _check_forwards(check: _Checker, inventory: Inventory) -> None:
    """A standard port has one owner per host (the seed: one service per standard port), and is
    neither the host's SSH port nor a port of a machine-environment there."""
    owners: dict[tuple[str, int], str] = {}
    for machine in inventory.machines.values():
        for service in machine.services.values():
            for port, _, env in service.forward:
                why = inventory.port_owner(machine.name, port)
                if why:
                    check.fail(f"machines.{machine.name}.services.{service.name}.forward.{port}",
                               f"port {port} of {machine.host} is {why}; forward a standard "
                               "port (80, 443, 389...)")
                owner = f"{machine.name}-{env}:{service.name}"
                first = owners.setdefault((machine.host, port), owner)
                if first != owner:
                    check.fail(f"machines.{machine.name}.services.{service.name}.forward.{port}",
                               f"port {port} of {machine.host} is already forwarded for {first};"
                               " one owner per standard port per host")


def load_inventory(path=None, *, catalog: set[str] | None = None) -> Inventory:
    """Read and validate an inventory file.

    :param path: the YAML file (the setting ``tinsnip.inventory`` names it); None means
        ``./inventory.yaml``.
    :param catalog: known service names; when given, other service names are errors.
    :returns: the :class:`Inventory`.
    :raises InventoryError: naming the file, the key and what to change.
    """
    path = str(path if path is not None else DEFAULT_PATH)
    data = _read(path)
    check = _Checker(path)
    check.mapping("", data, TOP_KEYS)
    nas = _parse_nas(check, data.get("nas"))
    sheets = _parse_sheets(check, data.get("sheets"), nas)
    machines = _parse_machines(check, data.get("machines"), sheets, catalog)
    inventory = Inventory(path, sheets, nas, machines)
    _check_numbers(check, inventory)
    _check_forwards(check, inventory)
    return inventory
