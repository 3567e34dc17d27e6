"""Env files: a service's ``.env`` (read by bash and by docker compose) and the operator's secrets
file (read here). Pure: text in, text or data out; no file is opened here.

A service's ``.env`` is read three ways on a machine host: bash sources it (the seed's
``set -a; source machine.env; source .env; set +a``), docker compose reads it as the project's
``.env`` for interpolation, and again as the service's ``env_file``. Every value tinsnip writes
into it is quoted so that all three read the same literal string (checked against bash here
and against docker compose 2.40 on a lab host):

- ``KEY='value'`` when the value holds no ``'`` and does not end with ``\\``: single quotes,
  inside which neither bash nor compose expands or unescapes anything;
- else ``KEY="value"`` when the value holds none of ``$ ` " \\``: double quotes with nothing in
  them for either to expand;
- else the value is refused (compose reads ``'\\''`` and a ``\\`` before the closing quote
  differently from bash: no quoting is read identically).

Line breaks (``\\n``, ``\\r``, and the Unicode ones), NUL and other control characters but tab
are refused in any value. Errors name the key, never the value.
"""
from __future__ import annotations

import re

from ..errors import InputError

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: What an unquoted value in a rendered .env may hold: safe characters and ``${NAME}``/``$NAME``
#: references to variables set before it (bash and compose expand those the same way).
_BARE_RE = re.compile(r"(?:[A-Za-z0-9_./:@,+%=-]|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)*")
_SINGLE_RE = re.compile(r"'[^']*'")
_DOUBLE_RE = re.compile(r'"[^$`"\\]*"')
_LINE_RE = re.compile(r"(" + KEY_RE.pattern + r")=(.*)")
_NEWLINES = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

PRIVATE_HINT = "keep the file private (mode 0600)"


def check_key(key) -> str:
    """Return ``key`` when it is an env variable name (``[A-Za-z_][A-Za-z0-9_]*``), else raise."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise InputError(f"{key!r} is not a variable name: use letters, digits and '_',"
                         " not starting with a digit")
    return key


def _check_value(key: str, value) -> str:
    if not isinstance(value, str):
        raise InputError(f"the value of {key} is not text")
    if any(c in _NEWLINES for c in value):
        raise InputError(f"the value of {key} holds a line break, which an env file cannot"
                         " carry; put it on one line")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise InputError(f"the value of {key} holds a control character (NUL or another);"
                         " remove it")
    return value


def quote(key: str, value: str) -> str:
    """``value`` as one word that bash and docker compose both read as exactly ``value``.

    :raises InputError: naming ``key`` (never the value) when no such word exists.
    """
    check_key(key)
    _check_value(key, value)
    if "'" not in value and not value.endswith("\\"):
        return f"'{value}'"
    if not any(c in value for c in "$`\"\\"):
        return f'"{value}"'
    raise InputError(
        f"the value of {key} holds a single quote together with one of $ ` \" \\ (or ends with"
        " \\): bash and docker compose read no quoting of it the same way; change the value"
    )


def line(key: str, value: str) -> str:
    """``KEY=<quoted value>`` (no newline)."""
    return f"{key}={quote(key, value)}"


def check_text(text: str, source: str) -> str:
    """Refuse a rendered ``.env`` with a line bash or compose would read as anything but one
    assignment of a literal (or ``${NAME}`` references): a template's mistake must not reach a
    shell. Returns ``text``.

    :raises InputError: naming ``source``, the line number and the key (never the value).
    """
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        m = _LINE_RE.fullmatch(raw)
        if not m:
            key = raw.split("=", 1)[0][:40] if "=" in raw else "?"
            raise InputError(f"{source}, line {n}: not a KEY=value line (key {key!r});"
                             " write NAME=value with no spaces around '='")
        key, value = m.groups()
        if not (_BARE_RE.fullmatch(value) or _SINGLE_RE.fullmatch(value) and not
                value.endswith("\\'") or _DOUBLE_RE.fullmatch(value)):
            raise InputError(
                f"{source}, line {n}: the value of {key} is not one literal word for bash and"
                " docker compose alike: quote it as 'value' (no ' inside), or use only letters,"
                " digits, . / : @ , + % = _ - and ${NAME}"
            )
    return text


def parse_secrets(text: str, source: str) -> dict[str, str]:
    """The operator's secrets file: ``KEY=value`` lines, blank lines and ``#`` comments.

    A value is taken literally, with no interpolation from any environment: unquoted, it runs
    to the end of the line (``#`` included) with surrounding spaces dropped; in single quotes,
    everything inside; in double quotes, everything inside with ``\\"`` and ``\\\\`` unescaped.
    An optional ``export `` before the key is allowed. CRLF line ends are accepted.

    :raises InputError: naming ``source``, the line and the key (never a value) for a line
        that is not ``KEY=value``, an unclosed quote, a key given twice, a NUL or a line break
        inside a value.
    """
    if "\0" in text:
        raise InputError(f"{source} holds a NUL character; it must be a text file")
    values: dict[str, str] = {}
    for n, raw in enumerate(text.split("\n"), start=1):
        body = raw[:-1] if raw.endswith("\r") else raw
        stripped = body.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, eq, value = stripped.partition("=")
        key = key.rstrip()
        where = f"{source}, line {n}"
        if not eq or not KEY_RE.fullmatch(key):
            shown = key[:40] if eq else "?"
            raise InputError(f"{where}: not a KEY=value line (key {shown!r})")
        value = value.strip()
        if value[:1] == "'":
            if len(value) < 2 or not value.endswith("'") or "'" in value[1:-1]:
                raise InputError(f"{where}: the value of {key} must close its single quote at"
                                 " the end of the line and hold no ' inside (use double quotes)")
            value = value[1:-1]
        elif value[:1] == '"':
            value = _double_quoted(value, f"{where}: the value of {key}")
        if key in values:
            raise InputError(f"{where}: {key} is set twice; keep one line")
        try:
            _check_value(key, value)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        values[key] = value
    return values


def _double_quoted(value: str, what: str) -> str:
    """The inside of ``"..."`` with ``\\"`` and ``\\\\`` unescaped; the closing quote must end it."""
    out, i = [], 1
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in '"\\':
            out.append(value[i + 1])
            i += 2
            continue
        if c == '"':
            if i != len(value) - 1:
                raise InputError(f"{what} has text after its closing quote")
            return "".join(out)
        out.append(c)
        i += 1
    raise InputError(f"{what} opens a quote it does not close on the same line (values are"
                     " one line)")


def check_private(path: str, mode: int, owner: int, me: int) -> None:
    """Refuse a secrets file that anyone but its owner (or root) may change, or that others
    may read: group or others write, others read, or another user's file. Group read (0640)
    is allowed. ``mode`` is ``st_mode``; ``owner`` its uid; ``me`` the running user's uid.

    :raises InputError: with the exact command to run.
    """
    from shlex import quote as shq

    perms = mode & 0o777
    if owner not in (me, 0):
        raise InputError(f"secrets file {path} belongs to uid {owner}, not to you: another"
                         f" user could change it; run: chown {me} {shq(path)} && chmod 600"
                         f" {shq(path)}")
    if perms & 0o037:
        who = []
        if perms & 0o007:
            who.append("others")
        if perms & 0o030:
            who.append("its group")
        raise InputError(f"secrets file {path} has mode {perms:04o}: {' and '.join(who)} can"
                         f" {'read or change' if perms & 0o007 else 'change'} it; run:"
                         f" chmod 600 {shq(path)}")
