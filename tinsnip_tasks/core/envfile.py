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


#: What an unquoted secret value may hold: characters bash, docker compose and python-dotenv
#: all read as themselves (no space, quote, ``$``, backslash, ``~`` or shell operator; ``#``
#: only after the first character); any character beyond ASCII but a space counts as a letter.
_PLAIN_SECRET_RE = re.compile(r"(?:[A-Za-z0-9_./:@,+%=^!-][A-Za-z0-9_./:@,+%=^!#-]*)?")
#: A binding's text up to its value: ``export``, the key, ``=`` and the spaces after it.
_BINDING_RE = re.compile(r"(\s*)(export[ \t]+)?([^=#\s]*)([ \t]*)=([ \t]*)(.*)", re.DOTALL)
QUOTING_HINT = ("write KEY=value with a plain value (letters, digits, . / : @ , + % = ^ ! _ -), "
                "KEY='value' (no \\\\ or \\' inside) or KEY=\"value\" (none of $ ` \\ inside), with "
                "nothing after it but a # comment")


def parse_secrets(text: str, source: str) -> dict[str, str]:
    """The operator's secrets file: ``KEY=value`` lines, blank lines and ``#`` comments, read
    with python-dotenv's parser (no interpolation), as docker compose reads an env file.

    On top of the parser, tinsnip refuses what would read differently in bash (the seed's
    ``set -a; source``), docker compose or python-dotenv, so a value means one thing
    everywhere: an unquoted value with anything but plain characters, a ``\\`` in single
    quotes, a ``$``, backtick or ``\\`` in double quotes, spaces around ``=``, text after a
    closing quote; and, as before, a key given twice, a NUL, a line break or another control
    character in a value, a carriage return (CRLF line ends: bash keeps the ``\\r``).
    ``A=abc # note`` is ``abc``; ``export A=...`` is allowed.

    :raises InputError: naming ``source``, the line and the key (never a value).
    """
    from io import StringIO

    from dotenv.parser import parse_stream

    if "\0" in text:
        raise InputError(f"{source} holds a NUL character; it must be a text file")
    if "\r" in text:
        n = text[:text.index("\r")].count("\n") + 1
        raise InputError(f"{source}, line {n}: a carriage return (Windows line end), which bash "
                         f"reads into the value; convert the file (dos2unix {source})")
    values: dict[str, str] = {}
    for b in parse_stream(StringIO(text)):
        raw = b.original.string
        m = _BINDING_RE.fullmatch(raw)
        lead = m.group(1) if m else raw[:len(raw) - len(raw.lstrip())]
        where = f"{source}, line {b.original.line + lead.count(chr(10))}"
        if b.key is None and not b.error:
            continue  # blank lines and comments
        key = m.group(3) if m else "?"
        if b.error or m is None or b.value is None or not KEY_RE.fullmatch(key):
            shown = key[:40] if m else "?"
            raise InputError(f"{where}: not a KEY=value line bash and docker compose read alike"
                             f" (key {shown!r}): {QUOTING_HINT}")
        if m.group(4):
            raise InputError(f"{where}: {key} has a space before '='; write {key}=value")
        rest = m.group(6)
        if m.group(5) and rest.strip():
            raise InputError(f"{where}: the value of {key} follows a space after '=' (bash runs "
                             f"it as a command, compose reads a comment there as the value); "
                             f"write {key}=value or {key}='value'")
        if key in values:
            raise InputError(f"{where}: {key} is set twice; keep one line")
        try:
            _check_value(key, b.value)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        _check_carried(key, rest, b.value, where)
        values[key] = b.value
    return values


_SINGLE_ESCAPE_RE = re.compile(r"\\[\\']")


def _check_carried(key: str, raw: str, value: str, where: str) -> None:
    """Refuse a value bash, docker compose and python-dotenv would read differently; ``raw``
    is the value as written (with its quotes)."""
    quote_char = raw[:1]
    if quote_char == "'":  # python-dotenv unescapes \\ and \' in single quotes; bash does not
        bad = bool(_SINGLE_ESCAPE_RE.search(raw))
    elif quote_char == '"':  # bash expands $ and `; python-dotenv decodes \t and others
        bad = any(c in raw.split('"')[1] for c in "$`\\") if raw.count('"') >= 2 else True
    else:  # letters of other scripts are plain too (bash, compose and dotenv keep them); a
        # space other than " " or tab is one bash keeps and the others strip
        ascii_part = "".join("a" if ord(c) > 127 and not c.isspace() else c for c in value)
        line = raw.split("\n", 1)[0]
        bad = (not _PLAIN_SECRET_RE.fullmatch(ascii_part)
               or any(c.isspace() and c not in " \t" for c in line))
    if bad:
        raise InputError(f"{where}: the value of {key} would not read the same in bash, docker "
                         f"compose and tinsnip: {QUOTING_HINT}")


def decoded(data: bytes, source: str) -> str:
    """The UTF-8 text of a file tinsnip reads secrets from.

    :raises InputError: naming ``source`` when it is not UTF-8 text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"secrets file {source} cannot be read: it is not UTF-8 text") from None


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
