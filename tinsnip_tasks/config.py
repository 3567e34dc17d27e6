"""tinsnip's settings: the ``tinsnip`` section of Invoke's configuration.

Every program reads it the Invoke way, lowest first: the defaults below (``ns.configure``),
the system, user and project config files (``/etc/tinsnip.yaml``, ``~/.tinsnip.yaml``,
``./tinsnip.yaml`` for the ``tinsnip`` command; ``invoke.yaml`` for ``inv``; ``fabric.yaml``
for ``fab``), environment variables with the program's prefix (``TINSNIP_TINSNIP_INVENTORY``,
``INVOKE_TINSNIP_INVENTORY``, ``FABRIC_TINSNIP_INVENTORY``), the runtime file given with
``-f``, and command-line flags. ``TINSNIP_INVENTORY`` (and ``TINSNIP_`` plus any other key
below) is a shortcut at the environment variables' level, used when the program's own
prefixed variable is not set. Tasks read the section as ``c.config.tinsnip.<key>``.

Invoke's own dry run (``--dry``/``-R``, ``run.dry`` in a file, ``INVOKE_RUN_DRY=1``) is
tinsnip's dry run too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from invoke.config import Config

from .errors import InputError, TinsnipError

#: Seconds tinsnip waits for a host to connect and speak SSH, unless ``connect_timeout`` says.
CONNECT_TIMEOUT = 10.0

#: The ``tinsnip`` section's keys and defaults.
DEFAULTS = {
    # the inventory file, relative to the current folder
    "inventory": "inventory.yaml",
    # the environment of tasks run without --env (None: --env is required)
    "env": None,
    # the OpenSSH client config file (None: ~/.ssh/config and /etc/ssh/ssh_config)
    "ssh_config": None,
    # known_hosts files (None: the SSH config's UserKnownHostsFile, else ~/.ssh/known_hosts)
    "known_hosts": None,
    # the only hosts tinsnip may connect to (None: any)
    "allowed_hosts": None,
    # run commands through `sudo -n`: auto (when the login user is not root), always, never
    "sudo": "auto",
    # the recap as JSON on stdout
    "json": False,
    # show commands and their output
    "verbose": False,
    # also write the JSON recap to this file
    "recap_file": "",
    # seconds to wait for a host to answer: the TCP connection, the SSH banner, authentication
    "connect_timeout": CONNECT_TIMEOUT,
    # the age identity file that decrypts secrets/<machine>-<env>.env.age (None: none)
    "age_identity": None,
}
SUDO_MODES = ("auto", "always", "never")
#: Keys that ``TINSNIP_<KEY>`` sets, as a shortcut for the program's own prefixed variable.
SHORTCUTS = ("inventory", "env", "ssh_config", "known_hosts", "allowed_hosts", "sudo",
             "recap_file", "connect_timeout", "age_identity")
SHORTCUT_PREFIX = "TINSNIP_"


def defaults() -> dict:
    """The configuration a collection gives with ``ns.configure(defaults())``."""
    return {"tinsnip": dict(DEFAULTS)}


def apply_shortcuts(config: Config, environ=os.environ) -> None:
    """Put ``TINSNIP_<KEY>`` variables at the environment level of ``config`` (where the
    program's own prefixed variable, which wins, has not set the key) and merge again."""
    # Invoke offers no public call to add to its environment level; _env and _set are what
    # its own load_shell_env uses.
    env = dict(config._env)
    section = dict(env.get("tinsnip", {}))
    changed = False
    for key in SHORTCUTS:
        value = environ.get(SHORTCUT_PREFIX + key.upper())
        if value is not None and key not in section:
            section[key] = value
            changed = True
    if changed:
        env["tinsnip"] = section
        config._set(_env=env)
        config.merge()


class TinsnipConfig(Config):
    """The ``tinsnip`` command's configuration: files ``tinsnip.yaml``, variables ``TINSNIP_``."""

    prefix = "tinsnip"

    def load_shell_env(self) -> None:
        from invoke.exceptions import Exit, UncastableEnvVar

        try:
            super().load_shell_env()
        except (ValueError, UncastableEnvVar) as e:  # TINSNIP_TINSNIP_CONNECT_TIMEOUT=soon
            raise Exit(f"error: a TINSNIP_ variable has a value its setting cannot take: {e}",
                       code=2) from None
        apply_shortcuts(self)


@dataclass(frozen=True)
class Settings:
    """The ``tinsnip`` section, checked, plus whether this is a dry run."""

    inventory: str
    ssh_config: str | None
    known_hosts: tuple[str, ...]
    allowed_hosts: frozenset[str] | None
    sudo: str
    dry: bool
    connect_timeout: float = CONNECT_TIMEOUT
    age_identity: str | None = None
    env: str | None = None
    json: bool = False
    verbose: bool = False
    recap_file: str = ""

    def environment(self, given: str = "") -> str:
        """The environment a task works on: ``given`` (``--env``), else ``tinsnip.env``.

        :raises InputError: neither gives one, or the one given is not an environment.
        """
        from .core.smep import env_number

        value = given or self.env
        if not value:
            raise InputError("no environment: give --env ENV (prod, test, ...) or set "
                             "tinsnip.env in the config (tinsnip.yaml, invoke.yaml or TINSNIP_ENV)")
        try:
            env_number(value)
        except TinsnipError as e:
            raise InputError(f"{'--env' if given else 'config tinsnip.env'}: {e}") from None
        return value

    def load_inventory(self):
        """The inventory the settings name, checked against the service catalog, with the
        operator's age identity.

        :raises InputError: the file is not a valid inventory.
        """
        from dataclasses import replace

        from .core.inventory import load_inventory
        from .core.render import catalog

        return replace(load_inventory(self.inventory, catalog=catalog()),
                       age_identity=self.age_identity)

    def use_sudo(self, login_user: str) -> bool:
        """Whether commands for a host logged in as ``login_user`` go through ``sudo -n``."""
        return self.sudo == "always" or (self.sudo == "auto" and login_user != "root")


def _words(key, value, sep=None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(w.strip() for w in value.split(sep) if w.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"config tinsnip.{key}: give a list of strings, not {value!r}")


def _path(key, value) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InputError(f"config tinsnip.{key}: give a file path, not {value!r}")
    return os.path.expanduser(value)


def _seconds(key, value) -> float:
    """A positive number of seconds (a number, or its text from a variable), at most a day."""
    try:
        seconds = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not 0 < seconds <= 86400:
        raise InputError(f"config tinsnip.{key}: give a number of seconds (0 < N <= 86400), "
                         f"not {value!r}")
    return seconds


def read(c, *, dry: bool = False) -> Settings:
    """The settings for a task run with context ``c``; ``dry`` is the task's own ``--dry``.

    :raises InputError: a setting has a value tinsnip cannot use, named with its key.
    """
    config = c.config
    if type(config) is not TinsnipConfig:  # inv and fab: their Config has no shortcut hook
        apply_shortcuts(config)
    section = config.get("tinsnip") or {}
    raw = {**DEFAULTS, **section}
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise InputError(f"config tinsnip: unknown key {unknown[0]!r}; "
                         f"known: {', '.join(DEFAULTS)}")
    sudo = raw["sudo"]
    if isinstance(sudo, bool):
        sudo = "always" if sudo else "never"
    if sudo not in SUDO_MODES:
        raise InputError(f"config tinsnip.sudo: {sudo!r} is not one of {', '.join(SUDO_MODES)}")
    allowed = _words("allowed_hosts", raw["allowed_hosts"], sep=",")
    run_dry = bool(config.get("run", {}).get("dry", False))
    return Settings(
        inventory=_path("inventory", raw["inventory"]) or DEFAULTS["inventory"],
        ssh_config=_path("ssh_config", raw["ssh_config"]),
        known_hosts=tuple(os.path.expanduser(p) for p in _words("known_hosts", raw["known_hosts"])),
        allowed_hosts=frozenset(allowed) if raw["allowed_hosts"] is not None else None,
        sudo=sudo,
        dry=bool(dry) or run_dry,
        connect_timeout=_seconds("connect_timeout", raw["connect_timeout"]),
        age_identity=_path("age_identity", raw["age_identity"]),
        env=raw["env"] or None,
        json=bool(raw["json"]),
        verbose=bool(raw["verbose"]),
        recap_file=_path("recap_file", raw["recap_file"]) or "",
    )
