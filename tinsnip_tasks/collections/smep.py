"""SMEP numbers: UIDs and ports from sheet, machine and environment (no host is contacted).

The machine number comes from the inventory's pin or the built-in defaults (station 00,
gazette 01, lldap 02, gateway 03); the station registry on the NAS is read by the tasks that
touch hosts. Without an inventory file the answers use the defaults; an inventory that does
not load is an error, as for every task.
"""
import os

from invoke import Collection, task
from invoke.exceptions import Exit

from .. import config
from ..core import registry as reg
from ..core.smep import ENVIRONMENTS, make_smep, sheet_number, validate_name
from ..errors import InputError, TinsnipError
from . import _args

HELP = {"sheet": _args.SHEET + " (default: the machine's sheet in the inventory)",
        "machine": _args.MACHINE, "env": _args.ENV}


def _inventory(settings, *, required=False):
    """The inventory the settings name; an invalid one is refused like by every other task.
    None when there is no file at the default path and ``required`` is false."""
    path = settings.inventory
    if not required and path == config.DEFAULTS["inventory"] and not os.path.exists(path):
        return None  # no inventory here: the numbers need none
    return settings.load_inventory()


def _smep(c, sheet, machine, env):
    """Numbers for a machine-environment, honouring the inventory's pins when it knows them;
    without ``sheet``, the machine's sheet in the inventory."""
    settings = config.read(c)
    env = settings.environment(env)
    validate_name("machine", machine)
    inv = _inventory(settings)
    known = inv.machines.get(machine) if inv else None
    if not sheet:
        if known is None:
            where = inv.path if inv else "no inventory here"
            raise InputError(f"give --sheet: machine {machine!r} is not in the inventory "
                             f"({where}), so its sheet is not known")
        sheet = known.sheet
    validate_name("sheet", sheet)
    pinned_sheet = inv.sheets[sheet].number if inv and sheet in inv.sheets else None
    # the number known without asking the NAS: the inventory's (pin or default) for a machine
    # of this sheet, else the built-in default
    number = (known.known_number if known is not None and known.sheet == sheet
              else reg.resolve(machine, None))
    if number is None:
        raise TinsnipError(f"machine {machine!r} has no default number; pin it in the inventory "
                           f"(machines: {machine}: number: NN) or run machine.setup, which "
                           f"assigns one from the station registry")
    return make_smep(sheet, machine, env, number, pinned_sheet_no=pinned_sheet)


def _answer(fn):
    try:
        return fn()
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=2)


@task(help=HELP)
def uid(c, machine, sheet="", env=""):
    """Print the UID of a machine-environment (e.g. 10110 for dynamicalsystem/gazette/test)."""
    print(_answer(lambda: _smep(c, sheet, machine, env)).uid)


@task(help=HELP)
def ports(c, machine, sheet="", env=""):
    """Print the ten TCP ports of a machine-environment, space-separated."""
    print(" ".join(str(p) for p in _answer(lambda: _smep(c, sheet, machine, env)).ports))


@task(help={"sheet": _args.SHEET})
def table(c, sheet):
    """Print the Port Allocation Table of a sheet for the machines the inventory knows."""
    def rows():
        validate_name("sheet", sheet)
        inv = _inventory(config.read(c), required=True)
        pin = inv.sheet(sheet).number
        out = []
        machines = [("station", ("prod", "test"), 0)]
        machines += [(m.name, m.environments, m.known_number)
                     for m in inv.machines.values() if m.sheet == sheet]
        for name, envs, number in machines:
            for env in sorted(envs, key=ENVIRONMENTS.get):
                if number is None:
                    out.append((name, env, "unassigned", "-", "-", "-"))
                    continue
                s = make_smep(sheet, name, env, number, pinned_sheet_no=pin)
                out.append((name, env, s.uid, *s.ports[:3]))
        return sheet_number(sheet, pin), out

    number, body = _answer(rows)
    print(f"Sheet {sheet} (S={number})")
    print("| Machine | Environment | SMEP UID | Primary Port | Secondary Port | API Port |")
    print("|---|---|---|---|---|---|")
    for row in body:
        print("| " + " | ".join(str(x) for x in row) + " |")


ns = Collection("smep", uid, ports, table)
