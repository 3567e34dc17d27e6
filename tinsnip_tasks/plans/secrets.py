"""The operator's secrets file of a machine-environment, plain or age-encrypted, on the operator's
machine: where it is, which one is used, its text (decrypted in memory), the values a service
takes from it (and how they are written into the service's ``.env``), and the two changes
tinsnip makes to it: ``encrypt`` (a plain file becomes an encrypted one) and ``edit`` (decrypt
to a private temporary file, run the editor, check, encrypt again).

``secrets/<machine>-<env>.env`` is the plain file and ``secrets/<machine>-<env>.env.age`` the
encrypted one; both at once is refused, naming both. Either is refused when others may read it
or anyone but its owner may change it (:func:`~tinsnip_tasks.core.envfile.check_private`), and
so is the identity file. The encrypted file goes to the public keys of the identity named by
``tinsnip.age_identity`` and to every key listed in ``secrets/recipients.txt`` (``age -R``'s
format), so one file can be opened by several people or machines.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import agefile, envfile
from ..errors import InputError
from ..output import write_atomic

if TYPE_CHECKING:
    from ..core.inventory import Inventory
    from .catalog import CatalogEntry

SUFFIX = ".age"
RECIPIENTS = "recipients.txt"
NO_IDENTITY = ("set tinsnip.age_identity (in tinsnip.yaml, or TINSNIP_AGE_IDENTITY) to your age"
               " identity file (make one with: age-keygen -o ~/.config/tinsnip/age.key)")


def encrypted(plain: Path) -> Path:
    """The encrypted file beside a plain secrets file: ``<name>.env.age``."""
    return plain.with_name(plain.name + SUFFIX)


def read_private(path: Path) -> bytes | None:
    """The bytes of a file only its owner may read (group read allowed); None when absent.
    The checks are made on the file opened (a FIFO, socket or device is refused without
    waiting on it).

    :raises InputError: with the command that fixes its mode or owner.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InputError(f"{path} cannot be read: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(f"{path} is not a regular file: tinsnip reads secrets only from one")
    with os.fdopen(fd, "rb") as f:
        envfile.check_private(str(path), st.st_mode, st.st_uid, os.getuid())
        try:
            return f.read()
        except OSError as e:
            raise InputError(f"{path} cannot be read: {type(e).__name__}") from None


def identities(identity: str | None, wanted_by: Path) -> list:
    """The keys of the identity file, for ``wanted_by`` (named in the error when none is set)."""
    if not identity:
        raise InputError(f"{wanted_by} is encrypted: {NO_IDENTITY}")
    path = Path(os.path.expanduser(identity))
    data = read_private(path)
    if data is None:
        raise InputError(f"config tinsnip.age_identity: {path} does not exist; {NO_IDENTITY}")
    return agefile.identities(envfile.decoded(data, str(path)), str(path))


def which(plain: Path) -> Path | None:
    """The secrets file in use: the plain one, the encrypted one, or None.

    :raises InputError: both exist (naming both).
    """
    enc = encrypted(plain)
    if plain.exists() and enc.exists():
        raise InputError(f"both {plain} and {enc} exist: keep one (tinsnip secrets.encrypt turns"
                         " the plain one into the encrypted one)")
    return enc if enc.exists() else plain if plain.exists() else None


def opened(plain: Path, identity: str | None) -> tuple[Path, str] | None:
    """The secrets file of ``plain``'s name and its text, decrypted in memory when it is the
    ``.age`` file; None when there is neither. In one line down: which file, the identity's
    keys when it is encrypted, its bytes (the file checked as opened), its text."""
    path = which(plain)
    if path is None:
        return None
    keys = None if path == plain else identities(identity, path)
    data = read_private(path)
    if data is None:  # removed since
        return None
    where = str(path)
    return path, (envfile.decoded(data, where) if keys is None
                  else agefile.decrypt(data, keys, where))


def secrets_path(inv: Inventory, machine: str, env: str) -> Path:
    """The plain secrets file of a machine-environment: ``secrets/{machine}-{env}.env`` beside
    the inventory."""
    return Path(inv.path).resolve().parent / "secrets" / f"{machine}-{env}.env"


def read_secrets(path: Path, identity: str | None = None) -> dict:
    """The secrets file's values, literally (core/envfile.py): refused when others may read
    or change it; no file means no values. ``path.age`` (age-encrypted) is decrypted in memory
    with ``identity``."""
    found = opened(path, identity)
    return {} if found is None else envfile.parse_secrets(found[1], str(found[0]))


def secret_values(inv: Inventory, machine: str, env: str) -> list[str]:
    """Every value of the machine-environment's secrets file: what a run hides in all it prints
    and records. A file that cannot be read (or decrypted) gives none, and no value to any step
    either, so none can be printed: the step that needs one refuses it, naming the problem."""
    path = secrets_path(inv, machine, env)
    try:
        return list(read_secrets(path, inv.age_identity).values())
    except InputError:
        return []


def load_secrets(inv: Inventory, machine: str, env: str, entry: CatalogEntry) -> dict:
    """The service's secrets (those its ``service.yaml`` names) from the machine-environment's
    secrets file."""
    if not entry.secrets:
        return {}
    path = secrets_path(inv, machine, env)
    values = read_secrets(path, inv.age_identity)
    missing = [k for k in entry.secrets if not values.get(k)]
    if missing:
        raise InputError(f"service {entry.name} needs {', '.join(missing)} in "
                         f"{which(path) or path} "
                         f"(KEY=value lines; {envfile.PRIVATE_HINT})")
    for k in entry.secrets:
        envfile.quote(k, values[k])  # a value no .env can carry is refused here, first
    return {k: values[k] for k in entry.secrets}


def secret_lines(secrets: dict) -> str:
    """The secrets as ``.env`` lines, each value quoted for bash and compose alike."""
    return "".join(envfile.line(k, v) + "\n" for k, v in secrets.items())


def public_keys(env: str, secrets: dict) -> tuple:
    """The keys of the ``.env`` text ``env`` that are not secrets and whose values hold no
    secret value: what a diff may show in clear."""
    out = []
    for line in env.splitlines():
        key, eq, value = line.partition("=")
        if eq and envfile.KEY_RE.fullmatch(key) and key not in secrets \
                and not any(v and v in value for v in secrets.values()):
            out.append(key)
    return tuple(out)


def recipients(plain: Path, keys: list) -> list:
    """Who an encrypted secrets file is for: the identity's own public keys and the keys in
    ``recipients.txt`` beside it (when it exists: refused when others may change it)."""
    out = agefile.public(keys)
    listed = plain.parent / RECIPIENTS
    if listed.exists():
        st = listed.stat()
        if st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022:
            raise InputError(f"{listed} may be changed by others, who could add their own key:"
                             f" run: chmod go-w {shlex.quote(str(listed))}")
        out += agefile.recipients(envfile.decoded(listed.read_bytes(), str(listed)),
                                  str(listed))
    if not out:
        raise InputError(f"no age recipient: the identity has no X25519 key; list public keys in"
                         f" {listed}")
    return out


def check(text: str, source: str) -> dict:
    """The secrets rules for a file's text: it parses (KEY=value lines) and every value can
    be carried by a ``.env``. Returns the values."""
    values = envfile.parse_secrets(text, source)
    for key, value in values.items():
        envfile.quote(key, value)
    return values


def seal(plain: Path, text: str, keys: list) -> int:
    """Encrypt ``text`` into the ``.age`` file of ``plain``'s name, atomically, and check that
    the file written decrypts to ``text``. Returns the number of recipients."""
    to = recipients(plain, keys)
    enc = encrypted(plain)
    write_atomic(enc, agefile.encrypt(text, to))
    if agefile.decrypt(enc.read_bytes(), keys, str(enc)) != text:
        raise InputError(f"{enc} does not decrypt to what was written; the disk may be failing")
    return len(to)


@dataclass(frozen=True)
class Outcome:
    """What ``encrypt`` or ``edit`` did (or would do, in a dry run)."""

    path: Path
    changed: bool
    detail: str


def encrypt(plain: Path, identity: str | None, *, dry: bool = False) -> Outcome:
    """The plain secrets file encrypted beside it; the plain one is removed once the encrypted
    one is written and decrypts to the same text. Already encrypted: nothing to do."""
    current = which(plain)
    enc = encrypted(plain)
    if current is None:
        raise InputError(f"no secrets file {plain} to encrypt")
    keys = identities(identity, enc)
    if current == enc:
        agefile.decrypt(read_private(enc), keys, str(enc))  # it opens with this identity
        return Outcome(enc, False, "already encrypted")
    text = envfile.decoded(read_private(plain), str(plain))
    check(text, str(plain))
    if dry:
        return Outcome(enc, True, f"would encrypt {plain} into {enc.name} and remove {plain.name}")
    n = seal(plain, text, keys)
    plain.unlink()
    return Outcome(enc, True, f"encrypted to {n} recipient(s); {plain.name} removed")


def private_dir() -> str:
    """A new folder of mode 0700 in memory when the system has one (``/dev/shm``, then
    ``$XDG_RUNTIME_DIR``), else in the temporary folder."""
    for base in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR", "")):
        if base and os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK):
            return tempfile.mkdtemp(prefix="tinsnip-secrets-", dir=base)
    return tempfile.mkdtemp(prefix="tinsnip-secrets-")


def editor_command(environ=os.environ) -> list[str]:
    """``$EDITOR``, else ``$VISUAL``, else ``vi``, split into words."""
    value = environ.get("EDITOR") or environ.get("VISUAL") or "vi"
    words = shlex.split(value)
    if not words:
        raise InputError("EDITOR is empty; set it to your editor, e.g. EDITOR=nano")
    return words


class EditorFailed(InputError):
    """The editor exited with an error or was ended by a signal: nothing is written."""

    def __init__(self, message: str, signalled: bool = False):
        super().__init__(message)
        self.signalled = signalled


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def _signals(handlers: dict):
    """``handlers`` (signal: handler) in force inside the block, the previous ones after it."""
    saved = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


#: A hangup or termination of tinsnip unwinds like Ctrl-C, so the temporary folder is removed.
ENDING = {signal.SIGTERM: _raise_interrupt, signal.SIGHUP: _raise_interrupt}


def run_editor(argv: list[str], path: str) -> None:
    """Run the editor on ``path`` and wait. Ctrl-C and Ctrl-\\ are the editor's while it runs
    (as git does); a hangup or termination of tinsnip ends the editor too.

    :raises EditorFailed: the editor failed or was ended by a signal.
    """
    try:
        proc = subprocess.Popen([*argv, path])
    except OSError as e:
        raise EditorFailed(f"cannot start the editor {argv[0]!r} ({e.strerror}); set EDITOR")
    try:
        with _signals({signal.SIGINT: signal.SIG_IGN, signal.SIGQUIT: signal.SIG_IGN}):
            code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code < 0:
        raise EditorFailed(f"the editor was ended by signal {-code}; nothing was written",
                           signalled=True)
    if code:
        raise EditorFailed(f"the editor exited with status {code}; nothing was written")


def _again(error: Exception) -> bool:
    """Ask whether to edit again after ``error`` (only on a terminal)."""
    print(f"error: {error}", file=sys.stderr)
    if not sys.stdin.isatty():
        return False
    answer = input("Edit again? [Y/n] ").strip().lower()
    return answer in ("", "y", "yes")


def edit(plain: Path, identity: str | None, *, template: str = "", environ=os.environ) -> Outcome:
    """Open the secrets file (decrypted) in the editor and encrypt what is saved, once it passes
    the secrets rules; the plain text lives only in a private temporary folder, removed on
    every way out (an editor error, Ctrl-C, a refusal). A new file starts from ``template``."""
    enc = encrypted(plain)
    if which(plain) == plain:
        raise InputError(f"{plain} is not encrypted; run tinsnip secrets.encrypt first")
    keys = identities(identity, enc)
    recipients(plain, keys)  # refused now rather than after the edit
    data = read_private(enc)
    original = agefile.decrypt(data, keys, str(enc)) if data is not None else None
    argv = editor_command(environ)
    with _signals(ENDING):
        return _edit_in(private_dir(), plain, keys, original, template, argv)


def _edit_in(folder: str, plain: Path, keys: list, original: str | None, template: str,
             argv: list[str]) -> Outcome:
    """:func:`edit` with the temporary ``folder`` made: write, edit, check, seal, remove it."""
    enc = encrypted(plain)
    try:
        path = os.path.join(folder, plain.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(original if original is not None else template)
        while True:
            run_editor(argv, path)
            try:
                text = Path(path).read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                error = InputError(f"{enc.name}: the edited text is not UTF-8")
            else:
                if text == original or (original is None and text == template):
                    return Outcome(enc, False, "unchanged")
                try:
                    check(text, f"{enc.name} (as edited)")
                    break
                except InputError as e:
                    error = e
            if not _again(error):
                raise error
        n = seal(plain, text, keys)
        return Outcome(enc, True, f"encrypted to {n} recipient(s)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
