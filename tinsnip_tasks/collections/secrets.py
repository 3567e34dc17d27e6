"""Secrets files encrypted with age, on the operator's machine (no host is contacted).

``secrets/<machine>-<env>.env.age`` beside the inventory is decrypted in memory with the
identity named by ``tinsnip.age_identity`` whenever a service needs its secrets; ``encrypt``
turns the plain file into it, ``edit`` changes it through the editor.
"""
from invoke import Collection, task
from invoke.exceptions import Exit

from .. import config
from ..config import default_env
from ..core.inventory import load_inventory
from ..core.render import catalog
from ..errors import TinsnipError
from ..plans import secrets as plan
from ..plans import catalog as catalog_plan
from ..results import EXIT_INPUT, EXIT_INTERRUPTED
from . import _args

HELP = {"machine": _args.MACHINE, "env": _args.ENV}


def _where(c, machine: str, env: str):
    """(the plain secrets path, the identity setting), both checked before anything is read."""
    settings = config.read(c)
    inv = load_inventory(settings.inventory, catalog=catalog())
    inv.check_env(machine, env)
    return inv, plan.secrets_path(inv, machine, env), settings.age_identity


def _template(inv, machine: str, env: str) -> str:
    """The start of a new secrets file: the keys the machine's services need."""
    lines = [f"# secrets of {machine}-{env}: KEY=value lines (values taken literally)"]
    for service in inv.machine(machine).services:
        keys = catalog_plan.service_entry(inv, machine, service).secrets
        lines += [f"# {service} needs: {', '.join(keys)}"] if keys else []
    return "\n".join(lines) + "\n"


def _report(outcome: plan.Outcome) -> None:
    print(f"{outcome.path}: {'changed' if outcome.changed else 'ok'} ({outcome.detail})")


@task(help={**HELP, "dry": "say what would be encrypted and removed; change nothing"})
def encrypt(c, machine, env="", dry=False):
    """Encrypt a plain secrets file with age (then remove the plain one)."""
    env = default_env(c, env)
    try:
        inv, plain, identity = _where(c, machine, env)
        dry = dry or config.read(c).dry
        _report(plan.encrypt(plain, identity, dry=dry))
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=EXIT_INPUT)


@task(help=HELP)
def edit(c, machine, env=""):
    """Edit an encrypted secrets file in $EDITOR; it is checked, then encrypted again."""
    env = default_env(c, env)
    try:
        inv, plain, identity = _where(c, machine, env)
        _report(plan.edit(plain, identity, template=_template(inv, machine, env)))
    except plan.EditorFailed as e:
        raise Exit(f"error: {e}", code=EXIT_INTERRUPTED if e.signalled else 1)
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=EXIT_INPUT)
    except KeyboardInterrupt:
        raise Exit("interrupted; nothing was written", code=EXIT_INTERRUPTED)


ns = Collection("secrets", encrypt, edit)
