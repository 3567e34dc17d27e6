"""/etc/exports in, nfs-ganesha configuration out: the NAS side of the lab's NFS stand-in.

A real NAS reads ``/etc/exports`` with ``exportfs -ra`` and serves it from the kernel. The lab's
NAS has no kernel NFS server, so its ``exportfs`` stand-in parses the same file with this module,
refuses what a real ``exportfs`` refuses, and renders an nfs-ganesha configuration that enforces
the same access rules (client list, ``rw``/``ro``, squashing, ``anonuid``/``anongid``).

Pure code: no file, network or process access. A resolver for client host names is passed in.
This file is also copied onto the lab's NAS and imported there by ``exportfs`` without the rest of
the package, so it depends on nothing but the standard library (the project's error base class is
used when it is importable).
"""

import ipaddress
import re
from dataclasses import dataclass, field

try:
    from tinsnip_lab.errors import LabError as _Base
except ImportError:  # running on a lab host, where only this file is installed
    class _Base(Exception):
        pass


class ExportsError(_Base, ValueError):
    """An exports file that a real ``exportfs`` would refuse; carries the source and line."""

    def __init__(self, source, line, problem):
        self.source, self.line, self.problem = source, line, problem
        where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(where + problem)


#: Default anonymous UID/GID of exports(5) (nobody/nogroup).
DEFAULT_ANON_ID = 65534

_FLAGS = {
    "rw", "ro", "sync", "async", "secure", "insecure", "wdelay", "no_wdelay", "hide", "nohide",
    "crossmnt", "nocrossmnt", "subtree_check", "no_subtree_check", "insecure_locks",
    "secure_locks", "no_auth_nlm", "auth_nlm", "root_squash", "no_root_squash", "all_squash",
    "no_all_squash", "acl", "no_acl", "pnfs", "no_pnfs", "security_label", "mp", "mountpoint",
}
_VALUED = {"anonuid", "anongid", "fsid", "sec", "mp", "mountpoint", "refer", "replicas"}
_SEC_FLAVORS = {"sys", "krb5", "krb5i", "krb5p", "none"}
_HOST_RE = re.compile(r"[A-Za-z0-9_.*?\-:\[\]@/]+")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")
_MAX_ID = 2**32 - 2


@dataclass(frozen=True)
class Client:
    """One client of an export, with the options that apply to it (defaults filled in)."""

    #: Host as written: a name, an address, a network (``10.0.0.0/24``), ``*`` or a wildcard.
    host: str
    #: Options as written, in order (line defaults first).
    options: tuple = ()
    access: str = "RO"  #: ``RW`` or ``RO``
    squash: str = "root_squash"  #: ``all_squash``, ``root_squash`` or ``no_root_squash``
    anonuid: int = DEFAULT_ANON_ID
    anongid: int = DEFAULT_ANON_ID
    #: ``secure`` (exports(5)'s default): only requests from ports below 1024, that is root's
    secure: bool = True

    def spec(self):
        """Return the client as an exports line would write it: ``host(opt,...)``."""
        return f"{self.host}({','.join(self.options)})"


@dataclass(frozen=True)
class Export:
    """A path and the clients it is exported to, in the order written."""

    path: str
    clients: tuple = field(default_factory=tuple)
    line: int = 0  #: line of the first entry for this path


def _tokens(text):
    """Split exports text into (line number, [tokens]) per logical line."""
    logical, start, buf = [], 1, ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        logical.append((start, buf + raw))
        buf = ""
    if buf:
        logical.append((start, buf))
    for number, line in logical:
        tokens, cur, quoted, in_parens = [], "", False, False
        for ch in line:
            if ch == '"':
                quoted = not quoted
                cur += ch
            elif quoted:
                cur += ch
            elif ch == "#" and not in_parens and not cur:
                break
            elif ch in " \t" and not in_parens:
                if cur:
                    tokens.append(cur)
                cur = ""
            else:
                if ch == "(":
                    in_parens = True
                elif ch == ")":
                    in_parens = False
                cur += ch
        if quoted:
            yield number, None, "unterminated quote"
            continue
        if cur:
            tokens.append(cur)
        if tokens:
            yield number, tokens, None


def _unquote_path(token):
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        token = token[1:-1]
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), token)


def _check_path(source, number, path):
    if not path.startswith("/"):
        raise ExportsError(source, number, f"export path {path!r} is not absolute")
    if any(c in path for c in '"\\\n\r\t') or any(ord(c) < 32 for c in path):
        raise ExportsError(source, number, f"export path {path!r} has a quote, backslash or "
                                           "control character")
    if any(part in (".", "..") for part in path.split("/")):
        raise ExportsError(source, number, f"export path {path!r} has a '.' or '..' component")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    return path


def _id_value(source, number, key, value):
    if not re.fullmatch(r"[0-9]+", value or "") or int(value) > _MAX_ID:
        raise ExportsError(source, number, f'bad {key} "{key}={value}"')
    return int(value)


def _apply_options(source, number, host, options):
    """Return a Client for ``host`` with ``options`` applied left to right."""
    access, squash, root_squash, secure = "RO", False, True, True
    anonuid = anongid = DEFAULT_ANON_ID
    for opt in options:
        key, eq, value = opt.partition("=")
        if not eq and key in _FLAGS:
            if key in ("rw", "ro"):
                access = key.upper()
            elif key == "all_squash":
                squash = True
            elif key == "no_all_squash":
                squash = False
            elif key == "root_squash":
                root_squash = True
            elif key == "no_root_squash":
                root_squash = False
            elif key in ("secure", "insecure"):
                secure = key == "secure"
            continue
        if not eq or key not in _VALUED:
            raise ExportsError(source, number, f'unknown keyword "{opt}"')
        if key in ("anonuid", "anongid"):
            parsed = _id_value(source, number, key, value)
            anonuid, anongid = (parsed, anongid) if key == "anonuid" else (anonuid, parsed)
        elif key == "fsid":
            if value != "root" and not re.fullmatch(r"[0-9]+", value) \
                    and not _UUID_RE.fullmatch(value):
                raise ExportsError(source, number, f'bad fsid "{opt}"')
        elif key == "sec":
            for flavor in value.split(":"):
                if flavor not in _SEC_FLAVORS:
                    raise ExportsError(source, number, f"unknown flavor {flavor}")
        elif not value:
            raise ExportsError(source, number, f'option "{opt}" needs a value')
    mode = "all_squash" if squash else ("root_squash" if root_squash else "no_root_squash")
    return Client(host, tuple(options), access, mode, anonuid, anongid, secure)


def _split_options(source, number, text):
    if text == "":
        return []
    parts = text.split(",")
    if any(p == "" for p in parts):
        raise ExportsError(source, number, "syntax error: bad option list")
    return parts


def parse_exports(text, *, source="/etc/exports", warn=None):
    """Parse exports(5) text into a list of :class:`Export`, one per path, in file order.

    Follows nfs-utils: ``#`` comments, ``\\`` continuation, quoted paths with ``\\040``-style
    escapes, ``-opts`` line defaults, ``host(opts)``, a bare ``host`` and a bare ``(opts)``
    (meaning every host, with a warning). Options override left to right.

    :param str text: the file's content.
    :param str source: the file's name, used in messages.
    :param warn: called with each warning message a real ``exportfs`` would print but accept.
    :returns: list of :class:`Export`.
    :raises ExportsError: for what a real ``exportfs`` refuses: an unknown option, a bad
        ``anonuid``/``anongid``/``fsid``/``sec`` value, a malformed option list, conflicting
        entries for the same path and host; and, stricter than nfs-utils, a relative path or a
        path or host with characters that cannot be served.
    """
    warn = warn or (lambda message: None)
    exports, order = {}, []
    for number, tokens, problem in _tokens(text):
        if problem:
            raise ExportsError(source, number, problem)
        path = _check_path(source, number, _unquote_path(tokens[0]))
        defaults, entries = [], tokens[1:]
        if entries and entries[0].startswith("-"):
            defaults = _split_options(source, number, entries[0][1:])
            entries = entries[1:]
        if not entries:
            warn(f"{source}:{number}: no host given for {path}, exporting to every host (*)")
            entries = ["*"]
        for entry in entries:
            match = re.fullmatch(r"([^()]*)(?:\(([^()]*)\))?", entry)
            if not match:
                raise ExportsError(source, number, "syntax error: bad option list")
            host, options = match.group(1), match.group(2)
            if host == "":
                warn(f"{source}:{number}: no host name given with {path} ({options or ''}), "
                     "exporting to every host (*)")
                host = "*"
            if not _HOST_RE.fullmatch(host):
                raise ExportsError(source, number, f"bad client name {host!r}")
            opts = defaults + _split_options(source, number, options or "")
            client = _apply_options(source, number, host, opts)
            if path not in exports:
                exports[path] = {"line": number, "clients": []}
                order.append(path)
            same = [c for c in exports[path]["clients"] if c.host == host]
            if same:
                old = same[0]
                if (old.access, old.squash, old.anonuid, old.anongid) != \
                        (client.access, client.squash, client.anonuid, client.anongid):
                    raise ExportsError(source, number, "incompatible duplicated export entries "
                                                       f"for {host}:{path}")
                warn(f"{source}:{number}: duplicated export entry {host}:{path} ignored")
                continue
            exports[path]["clients"].append(client)
    return [Export(p, tuple(exports[p]["clients"]), exports[p]["line"]) for p in order]


def assign_export_ids(paths, previous=None):
    """Give each path a stable nfs-ganesha ``Export_Id``.

    A path keeps the id it had before (so a reload updates it in place); a new path gets the
    lowest id from 1 up that is free.

    :param paths: export paths, in order.
    :param dict previous: path -> id from the last configuration, or None.
    :returns: dict path -> id for exactly ``paths``.
    """
    previous = previous or {}
    ids = {p: previous[p] for p in paths if p in previous}
    used, candidate = set(ids.values()), 1
    for path in paths:
        if path in ids:
            continue
        while candidate in used:
            candidate += 1
        ids[path] = candidate
        used.add(candidate)
    return ids


def _is_address(host):
    try:
        ipaddress.ip_network(host, strict=False)
        return True
    except ValueError:
        return False


def resolve_clients(exports, resolve, *, warn=None):
    """Replace client host names by addresses, as the server will see the clients.

    Addresses, networks, ``*``, wildcards and ``@netgroups`` are kept. A name that does not
    resolve is dropped with a warning (a real ``exportfs`` does the same).

    :param exports: list of :class:`Export`.
    :param resolve: callable name -> list of address strings (empty when unknown).
    :param warn: called with each warning message.
    :returns: a new list of :class:`Export` whose clients carry addresses.
    """
    warn = warn or (lambda message: None)
    out = []
    for export in exports:
        clients = []
        for client in export.clients:
            host = client.host
            if host == "*" or _is_address(host) or host.startswith("@") \
                    or any(c in host for c in "*?[]"):
                clients.append(client)
                continue
            addresses = resolve(host)
            if not addresses:
                warn(f"failed to resolve {host}; {host}:{export.path} is not exported")
            for address in addresses:
                clients.append(Client(address, client.options, client.access, client.squash,
                                      client.anonuid, client.anongid, client.secure))
        out.append(Export(export.path, tuple(clients), export.line))
    return out


_SQUASH = {"all_squash": "All_Squash", "root_squash": "Root_Squash",
           "no_root_squash": "No_Root_Squash"}


def render_ganesha(exports, export_ids, *, log_level="EVENT"):
    """Render an nfs-ganesha configuration serving ``exports`` over NFSv3 and NFSv4 on TCP.

    Each export gets ``Access_Type = None`` at the top, so a host that no CLIENT block lists is
    refused, and one CLIENT block per client (first match wins, as in the exports file).
    NLM, RQUOTA and the NFSv4 grace period are off: none of them work or matter in a lab host.

    :param exports: list of :class:`Export`, clients already resolved to addresses.
    :param dict export_ids: path -> ``Export_Id`` (see :func:`assign_export_ids`).
    :param str log_level: ganesha's default log level.
    :returns: the configuration text.
    """
    lines = [
        "# Generated by the lab's exportfs stand-in from /etc/exports; edits are overwritten.",
        "NFS_CORE_PARAM {",
        "    Protocols = 3, 4;",
        "    Enable_NLM = false;",
        "    Enable_RQUOTA = false;",
        "    Enable_UDP = false;",
        "}",
        "NFSV4 {",
        "    Graceless = true;",
        "}",
        "NFS_KRB5 {",
        "    Active_krb5 = false;",
        "}",
        "LOG {",
        f"    Default_Log_Level = {log_level};",
        "}",
    ]
    for export in exports:
        lines += [
            "EXPORT {",
            f"    Export_Id = {export_ids[export.path]};",
            f'    Path = "{export.path}";',
            f'    Pseudo = "{export.path}";',
            "    Protocols = 3, 4;",
            "    Transports = TCP;",
            "    SecType = sys;",
            "    Access_Type = None;",
            "    FSAL {",
            "        Name = VFS;",
            "    }",
        ]
        for client in export.clients:
            lines += [
                "    CLIENT {",
                f"        Clients = {client.host};",
                f"        Access_Type = {client.access};",
                f"        Squash = {_SQUASH[client.squash]};",
                f"        Anonymous_Uid = {client.anonuid};",
                f"        Anonymous_Gid = {client.anongid};",
                f"        PrivilegedPort = {'true' if client.secure else 'false'};",
                "    }",
            ]
        lines.append("}")
    return "\n".join(lines) + "\n"


def format_exports(exports):
    """Format exports the way ``exportfs -v`` lists them: one ``path  host(options)`` a line."""
    out = []
    for export in exports:
        for client in export.clients:
            out.append(f"{export.path:<24} {client.spec()}")
    return "\n".join(out) + ("\n" if out else "")
