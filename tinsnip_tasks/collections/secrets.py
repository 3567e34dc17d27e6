"""Secrets files encrypted with age, on the operator's machine (no host is contacted).

``secrets/<machine>-<env>.env.age`` beside the inventory is decrypted in memory with the
identity named by ``tinsnip.age_identity`` whenever a service needs its secrets; ``encrypt``
turns the plain file into it, ``edit`` changes it through the editor.
"""
from invoke import Collection, task
from invoke.exceptions import Exit

from .. import config
from .. import resolve
from ..errors import TinsnipError
from ..plans import secrets as plan
from ..results import EXIT_INPUT, EXIT_INTERRUPTED
from . import _args

HELP = {"machine": _args.MACHINE, "env": _args.ENV}


def _where(c, machine: str, env: str):
    """(the inventory, the machine-environment, the plain secrets path), checked before
    anything is read."""
    inv, me = resolve.offline(c, machine, env)
    return inv, me, plan.secrets_path(inv, *me.key)


def _template(inv, me) -> str:
    """The start of a new secrets file: the keys the machine's services need."""
    from ..plans import catalog as catalog_plan

    lines = [f"# secrets of {me.name}: KEY=value lines (values taken literally)"]
    for service in me.machine.services:
        keys = catalog_plan.service_entry(inv, me.machine.name, service).secrets
        lines += [f"# {service} needs: {', '.join(keys)}"] if keys else []
    return "\n".join(lines) + "\n"


def _report(outcome: plan.Outcome) -> None:
    print(f"{outcome.path}: {'changed' if outcome.changed else 'ok'} ({outcome.detail})")


@task(help={**HELP, "dry": "say what would be encrypted and removed; change nothing"})
def encrypt(c, machine, env="", dry=False):
    """Encrypt a plain secrets file with age (then remove the plain one)."""
    try:
        inv, me, plain = _where(c, machine, env)
        settings = config.read(c)
        _report(plan.encrypt(plain, settings.age_identity, dry=dry or settings.dry))
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=EXIT_INPUT)


@task(help=HELP)
def edit(c, machine, env=""):
    """Edit an encrypted secrets file in $EDITOR; it is checked, then encrypted again."""
    try:
        inv, me, plain = _where(c, machine, env)
        _report(plan.edit(plain, inv.age_identity, template=_template(inv, me)))
    except plan.EditorFailed as e:
        raise Exit(f"error: {e}", code=EXIT_INTERRUPTED if e.signalled else 1)
    except TinsnipError as e:
        raise Exit(f"error: {e}", code=EXIT_INPUT)
    except KeyboardInterrupt:
        raise Exit("interrupted; nothing was written", code=EXIT_INTERRUPTED)


ns = Collection("secrets", encrypt, edit)
