"""SMEP numbers: Sheet, Machine, Environment, Port.

A machine-environment's UID is ``S*10000 + M*100 + E*10`` and its ten ports are
that UID plus 0..9.  Everything here is pure: no files, no network, no shell.
"""

import hashlib
import re
from dataclasses import dataclass

from tinsnip_tasks.errors import InputError, SmepError

#: Environment name -> E digit, in SMEP order.
ENVIRONMENTS = {
    "prod": 0,
    "test": 1,
    "dev": 2,
    "staging": 3,
    "demo": 4,
    "qa": 5,
    "uat": 6,
    "preview": 7,
    "canary": 8,
    "local": 9,
}

#: Sheet, machine, service and port names: they end up in user names, paths and labels.
#: Always used with ``fullmatch`` (``$`` would let a value ending in a newline pass).
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")

PORT_MIN, PORT_MAX = 1024, 65535
#: Linux (useradd) refuses longer user names.
USER_NAME_MAX = 32


def validate_name(kind: str, value) -> str:
    """Return ``value`` if it is a valid name, else raise.

    :param str kind: what the name is for ("machine", "sheet", ...), used in the message.
    :returns: ``value`` unchanged.
    :raises InputError: when ``value`` is not a string matching :data:`NAME_RE`.
    """
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InputError(
            f"{kind} name {value!r} is not valid: use 1-32 lowercase letters, digits or '-',"
            " starting with a letter"
        )
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sheet_number(sheet: str, pinned: int | None = None) -> int:
    """Return the SMEP sheet number S (1..9).

    A pinned number wins.  Otherwise S is the first hex digit of
    ``md5(sheet + "\\n")`` modulo 9, plus 1: the same as
    ``echo "$sheet" | md5sum | cut -c1-1`` fed to ``awk '{print ($1 % 9) + 1}'``.

    :param str sheet: the sheet name.
    :param pinned: a number fixed in the inventory, or None.
    :raises SmepError: when ``pinned`` is not an integer 1..9.
    :raises InputError: when ``sheet`` is not a valid name.
    """
    validate_name("sheet", sheet)
    if pinned is not None:
        if not _is_int(pinned) or not 1 <= pinned <= 9:
            raise SmepError(
                f"sheet {sheet!r}: pinned number {pinned!r} is not valid: use an integer 1..9"
            )
        return pinned
    first_hex = hashlib.md5((sheet + "\n").encode()).hexdigest()[0]
    return int(first_hex, 16) % 9 + 1


def env_number(env: str) -> int:
    """Return the SMEP environment digit E for ``env``.

    :raises SmepError: when ``env`` is not one of :data:`ENVIRONMENTS`.
    """
    if isinstance(env, str) and env in ENVIRONMENTS:
        return ENVIRONMENTS[env]
    raise SmepError(f"{env!r} is not an environment; use one of {', '.join(ENVIRONMENTS)}")


def machine_uid(sheet_no: int, machine_no: int, env_no: int) -> int:
    """Return ``S*10000 + M*100 + E*10``, the UID of a machine-environment.

    :raises SmepError: when S is not 1..9, M not 0..99 or E not 0..9.
    """
    for what, value, low, high in (
        ("sheet number", sheet_no, 1, 9),
        ("machine number", machine_no, 0, 99),
        ("environment number", env_no, 0, 9),
    ):
        if not _is_int(value) or not low <= value <= high:
            raise SmepError(f"{what} {value!r} is out of range: use an integer {low}..{high}")
    return sheet_no * 10000 + machine_no * 100 + env_no * 10


def port_list(uid: int) -> list[int]:
    """Return the ten ports of a machine-environment: ``uid + 0`` .. ``uid + 9``."""
    return [uid + p for p in range(10)]


@dataclass(frozen=True)
class Smep:
    """The numbers and names of one machine in one environment of one sheet."""

    sheet: str
    sheet_no: int
    machine: str
    machine_no: int
    env: str
    env_no: int

    @property
    def uid(self) -> int:
        """UID and GID of the machine user, also its first port."""
        return machine_uid(self.sheet_no, self.machine_no, self.env_no)

    @property
    def ports(self) -> list[int]:
        """TIN_PORT_0 .. TIN_PORT_9."""
        return port_list(self.uid)

    @property
    def user(self) -> str:
        """System user name on the machine host, e.g. ``gazette-prod``."""
        return f"{self.machine}-{self.env}"

    @property
    def mount_point(self) -> str:
        """Where the NAS export is mounted on the machine host."""
        return f"/mnt/{self.machine}-{self.env}"

    @property
    def label(self) -> str:
        """``sheet/machine/env``, for messages and reports."""
        return f"{self.sheet}/{self.machine}/{self.env}"


def _largest_fitting_sheet_no(machine_no: int, env_no: int) -> int:
    fitting = [s for s in range(1, 10) if machine_uid(s, machine_no, env_no) + 9 <= PORT_MAX]
    return max(fitting) if fitting else 0


def make_smep(sheet, machine, env, machine_no, *, pinned_sheet_no=None) -> Smep:
    """Validate names and numbers and return the :class:`Smep` of a machine-environment.

    :param str sheet: sheet name.
    :param str machine: machine name.
    :param str env: environment name (see :data:`ENVIRONMENTS`).
    :param int machine_no: machine number M, 0..99.
    :param pinned_sheet_no: the sheet's number pinned in the inventory, or None.
    :raises InputError: on a bad name.
    :raises SmepError: on a bad number, or when a port falls outside 1024..65535.
    """
    validate_name("sheet", sheet)
    validate_name("machine", machine)
    env_no = env_number(env)
    sheet_no = sheet_number(sheet, pinned_sheet_no)
    smep = Smep(sheet, sheet_no, machine, machine_no, env, env_no)
    ports = smep.ports  # validates machine_no through machine_uid
    bad = [p for p in ports if not PORT_MIN <= p <= PORT_MAX]
    if bad:
        how = "pinned" if pinned_sheet_no is not None else "computed"
        largest = _largest_fitting_sheet_no(machine_no, env_no)
        raise SmepError(
            f"sheet {sheet!r} ({how} number {sheet_no}), machine {machine!r} (number"
            f" {machine_no}), environment {env!r}: port {bad[0]} is outside"
            f" {PORT_MIN}..{PORT_MAX}. Pin the sheet's number in the inventory"
            f" (sheets: {sheet}: number: N) with N from 1 to {largest} for this machine"
            " (1..5 fit every machine),"
            " different from the other sheets' numbers."
        )
    if len(smep.user) > USER_NAME_MAX:
        raise InputError(
            f"user name {smep.user!r} would be {len(smep.user)} characters; Linux allows"
            f" {USER_NAME_MAX}: shorten the machine name {machine!r}"
        )
    return smep
