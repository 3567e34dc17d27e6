"""Resources on a host: folders, files, lines, links, users, mounts.

Each one is data plus three pure methods (fact command, parser, commands for a given fact), so
tests feed facts in and check the commands that come out, with no host involved.
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import posixpath
import re
import secrets
import stat
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import ConflictError
from .base import MARK, RETRY_EXIT, Cmd, Resource, q, sh

MISSING = "missing"
STAT = "%f:%u:%g"  # raw mode bits in hex, owner, group: numbers only, the same in every locale
TYPES = {stat.S_IFDIR: "directory", stat.S_IFREG: "regular file", stat.S_IFLNK: "symbolic link",
         stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFBLK: "block device",
         stat.S_IFCHR: "character device"}


def as_uid(uid: int, script: str) -> str:
    """``script`` run by user and group ``uid`` with no other groups (``setpriv``, no PAM, no
    name lookup). Whatever it writes, that user could have written anyway: a link the user
    planted leads nowhere the user could not already go."""
    return sh("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
              "sh", "-c", "cd / && " + script)


def _acting(owner: Optional[int], script: str) -> str:
    return script if owner is None else as_uid(owner, script)


class ReadAsOwner(Resource):
    """A resource whose fact is read as its ``owner`` when it has one (else as root):
    :meth:`owner_fact` is the script that reads it."""

    def owner_fact(self) -> str:
        raise NotImplementedError

    def fact_as(self):
        return self.owner, self.owner_fact()

    def fact_command(self):
        return _acting(*self.fact_as())


def mounts_on(path: str, shown: str) -> str:
    """Shell printing ``shown`` (a shell word; ``$dev`` and ``$kind`` are the entry's source and
    file system type) for each entry of /proc/mounts mounted on ``path``, read by the shell
    itself: one process fewer per fact, as awk would be."""
    return (f"while read -r dev on kind _; do if [ \"$on\" = {q(path)} ]; then echo {shown}; fi; "
            "done < /proc/mounts")


def _stat_cmd(path: str) -> str:
    return f"stat -c {STAT} -- {q(path)} || echo {MISSING}"


#: ``stat -c`` format of a line that names its path and, for a link, its target (``%N``:
#: ``PATH -> TARGET``, escaped as ``QUOTING_STYLE=escape`` says: no newline in it)
STAT_N = f"{STAT}|%n|%N"


def _link_fact(var: str) -> str:
    """Shell printing a link's fact (:meth:`Symlink.parse`) from ``$var``, its :data:`STAT_N`
    line or ``missing``: ``link`` and the target, ``other``, or ``missing``. (``printf``, not
    ``echo``: dash's ``echo`` would turn an escaped ``\\n`` back into a newline.)"""
    return (f"case ${var} in a*) echo link; printf '%s\\n' \"${{{var}#*\" -> \"}}\";; "
            f"{MISSING}) echo {MISSING};; *) echo other;; esac")


def stat_facts(reads: list[tuple[int, str, str, str]]) -> str:
    """Shell printing the facts of ``reads`` (``(index, path, how, tail)``, from
    :meth:`~.base.Resource.stat_read`), each behind its marker, from one ``stat`` of every path
    and one ``sha256sum`` of the regular files among the ``file`` reads (the shell matches the
    lines of both to the paths; a path they could not read stays ``missing``). No path may hold
    a newline or ``|``. Each fact is what the resource's own fact script prints:

    - ``stat``: the path's :func:`_stat_cmd` line;
    - ``link``: ``link`` and the target (written as ``QUOTING_STYLE=escape`` does: a newline
      in it is ``\\n``), ``other`` or ``missing``, as :meth:`Symlink.owner_fact`;
    - ``file``: the stat line, the ``sha256sum`` line of a regular file, then what ``tail``
      prints, which reads ``$s`` and ``$h`` (:meth:`File.after_digest`);
    - ``read``: the stat line, a regular file's content in base64, then what ``tail`` prints
      (:meth:`Edited.fact_command`)."""
    indexes: dict[str, list[int]] = {}
    for i, p, _, _ in reads:  # a folder of several steps is read once for all of them
        indexes.setdefault(p, []).append(i)
    names = " ".join(q(p) for p in indexes)
    start = " ".join(f"_ts{i}={MISSING}" for i, *_ in reads)
    cases = "".join(f"{q(p)}) " + "".join(f"_ts{i}=$l; " for i in ii) + ";; "
                    for p, ii in indexes.items())
    shown, first = [], {}
    for i, p, how, tail in reads:
        j = first.setdefault((p, how, tail), i)
        if j != i:  # a path read alike by several steps (/etc/fstab): printed once
            shown.append(f"echo {MARK}{i}={j}")
            continue
        shown.append(f"echo {MARK}{i}")
        if how == "link":
            shown.append(_link_fact(f"_ts{i}"))
        elif how == "file":
            shown.append(f"s=${{_ts{i}%%|*}} h=$_th{i}; echo \"$s\"; "
                         f"if [ -n \"$h\" ]; then echo \"$h\"; fi; {tail}")
        elif how == "read":
            shown.append(f"echo \"${{_ts{i}%%|*}}\"; case $_ts{i} in 8*) base64 < {q(p)};; esac"
                         + (f"; {tail}" if tail else ""))
        else:
            shown.append(f"echo \"${{_ts{i}%%|*}}\"")
    script = (f"QUOTING_STYLE=escape stat -c '{STAT_N}' -- {names} 2>/dev/null | {{ {start}; "
              "while IFS= read -r l; do r=${l#*|}; case ${r%%|*} in " + cases + "esac; done; ")
    files: dict[str, list[int]] = {}
    for i, p, how, _ in reads:
        if how == "file":
            files.setdefault(p, []).append(i)
    if not files:
        return script + "; ".join(shown) + "; }"
    regular = "".join(f"case $_ts{ii[0]} in 8*) set -- \"$@\" {q(p)};; esac; "
                      for p, ii in files.items())
    hashed = "".join(f"{q(p)}) " + "".join(f"_th{i}=\"$hh  -\"; " for i in ii) + ";; "
                     for p, ii in files.items())
    empty = " ".join(f"_th{i}=" for ii in files.values() for i in ii)
    return (script + f"set --; {regular}{{ if [ $# -gt 0 ]; then sha256sum -- \"$@\"; fi; }} "
            f"2>/dev/null | {{ {empty}; while read -r hh pp; do case $pp in {hashed}esac; done; "
            + "; ".join(shown) + "; }; }")


def parse_stat(line: str) -> Optional[dict]:
    """``81a0:10100:10100`` (``stat -c %f:%u:%g``) -> dict, or None when the path is missing."""
    line = line.strip().splitlines()[0] if line.strip() else MISSING
    if line == MISSING:
        return None
    raw, uid, gid = line.split(":")
    bits = int(raw, 16)
    return {"type": TYPES.get(stat.S_IFMT(bits), "special file"), "uid": int(uid),
            "gid": int(gid), "mode": stat.S_IMODE(bits)}


def _stat_and(path: str, body: str) -> str:
    """Stat line of ``path`` (never following a link), then, when it is a regular file, the
    output of ``body`` reading it; or ``missing``."""
    p = q(path)
    return (f"if s=$(stat -c {STAT} -- {p}); then echo \"$s\"; "
            f"if [ -f {p} ] && [ ! -L {p} ]; then {body} < {p}; fi; else echo {MISSING}; fi")


def _parse_stat_and(out: str) -> tuple[Optional[dict], list[str]]:
    lines = out.strip().splitlines()
    return parse_stat(lines[0] if lines else MISSING), lines[1:]


NOW = "@@now"
DIFF_LIMIT = 65536  # bytes of a file read for the diff of a dry run
KEY_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def masked(keys) -> str:
    """``KEY=***`` lines: what a diff shows of a secret file."""
    return "".join(f"{k}=***\n" for k in keys)


#: What the diff of a file holding a secret shows for a line that is not in the new file.
HIDDEN_LINE = "*** (a line not in the new file: not shown, the file holds secrets)\n"


def _env_lines(lines, public) -> str:
    """``KEY=value`` lines of a secret file as a diff shows them: a key of ``public`` with its
    value, any other as ``KEY=***`` (a line without ``=`` is a key whose value was not read)."""
    out = []
    for line in lines:
        key = line.split("=", 1)[0]
        out.append(line if key in public and "=" in line else f"{key}=***")
    return "".join(f"{l}\n" for l in out)


def _fails_whole(text: str) -> str:
    """``text`` (an and-or list) failing stops the script: ``set -e`` alone ignores a failure
    anywhere but in the last command of such a list."""
    return f"{{ {text}; }} || exit $?"


def unified_diff(path: str, old: str, new: str) -> str:
    """``diff -u`` of a file's old and new text, as a person reads it in a dry run."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        f"{path} (now)", f"{path} (wanted)"))


def _refuse(message: str) -> str:
    return f"{{ echo {q(message)} >&2; exit 1; }}"


def _pin_folder(path: str, *, root_writes: bool = False) -> str:
    """Enter the folder ``path`` and make sure it is that folder itself, not a link to another
    (the physical path is checked after ``cd``, so what follows acts on the folder that was
    checked even if names are swapped meanwhile). With ``root_writes``, the folder must also be
    writable by its owner only, and its owner must be root or a station UID (machine 00, whose
    export is read-only): a folder no one but root can change."""
    parent, name = posixpath.split(path.rstrip("/") or "/")
    where = (f"[ \"$(pwd -P)\" = \"$(cd -P -- {q(parent or '/')} && pwd -P | sed 's,/$,,')\"/{q(name)} ]"
             if name else "true")
    cmd = (f"cd -P -- {q(path)} && {where} || "
           + _refuse(f"{path} is missing or not a folder of its own (a link?); tinsnip does "
                     "not follow it"))
    if root_writes:
        owner_ok = ("u=$(stat -c %u .) && { [ \"$u\" -eq 0 ] || "
                    "{ [ \"$u\" -ge 10000 ] && [ $((u / 100 % 100)) -eq 0 ]; }; }")
        cmd += (f" && [ -n \"$(find . -maxdepth 0 ! -perm /022)\" ] && {owner_ok} || "
                + _refuse(f"{path} is writable by others than root: root does not write there"))
    return cmd


def _attr_cmds(path: str, fact: Optional[dict], uid, gid, mode, *, link=False) -> list[Cmd]:
    out = []
    if uid is not None and (fact is None or fact["uid"] != uid or fact["gid"] != gid):
        out.append(Cmd(sh("chown", *(["-h"] if link else []), f"{uid}:{gid}", path)))
    if mode is not None and (fact is None or fact["mode"] != mode):
        out.append(Cmd(sh("chmod", f"{mode:04o}", path)))
    return out


@dataclass(frozen=True)
class Directory(ReadAsOwner):
    """A folder, with owner and mode when they are given.

    ``owner`` set: everything (the fact too) is done as that user, for folders in the user's
    home or on its NFS mount; the folder must then belong to that user. Otherwise root creates
    the folder (refusing a link in its place) and sets owner and mode in the same command, on
    the folder it entered and checked, never through a name that could be swapped meanwhile.
    """

    path: str
    uid: Optional[int] = None
    gid: Optional[int] = None
    mode: Optional[int] = None
    owner: Optional[int] = None

    def describe(self):
        return f"folder {self.path}"

    def owner_fact(self):
        return _stat_cmd(self.path)

    def stat_read(self):
        return self.path, "stat", ""

    def parse(self, out):
        return parse_stat(out)

    def commands(self, fact):
        if fact is not None and fact["type"] != "directory":
            raise ConflictError(f"{self.path} is a {fact['type']}, not a folder")
        gid = self.gid if self.gid is not None else self.uid
        if self.owner is not None:
            if fact is not None and fact["uid"] != self.owner:
                raise ConflictError(f"{self.path} belongs to UID {fact['uid']}, not "
                                    f"{self.owner}; tinsnip works there only as {self.owner}")
            fix = _attr_cmds(".", fact, None, None, self.mode)
            if fact and not fix:
                return []
            p = q(self.path)
            script = " && ".join([f"{{ [ -d {p} ] || mkdir -p -- {p}; }}", f"cd -P -- {p}"]
                                 + [c.text for c in fix])
            return [Cmd(as_uid(self.owner, script),
                        f"as UID {self.owner}: make {self.path}"
                        + (f" mode {self.mode:04o}" if self.mode is not None else ""))]
        fix = _attr_cmds(".", fact, self.uid, gid, self.mode, link=True)
        if fact and not fix:
            return []
        p = q(self.path)
        script = _fails_whole(" && ".join(
            [f"{{ [ ! -L {p} ] || {_refuse(f'{self.path} is a link; tinsnip does not follow it')}; }}",
             f"{{ [ -e {p} ] || mkdir -p -- {p}; }}", f"( {_pin_folder(self.path)}"]
            + [c.text for c in fix]) + " )")
        what = [f"owner {self.uid}:{gid}" if self.uid is not None else "",
                f"mode {self.mode:04o}" if self.mode is not None else ""]
        return [Cmd(script, " ".join(["make" if fact is None else "fix", self.path,
                                      *filter(None, what)]))]


def write_file_cmds(path: str, content: bytes, uid=None, gid=None, mode=0o644, *,
                    secret: bool = False, owner: Optional[int] = None) -> list[Cmd]:
    """Write ``content`` to a new temporary file beside ``path`` and rename it into place, so a
    reader never sees half a file and a failure leaves the old file whole.

    The temporary file is made by ``mktemp`` (a fresh name, created exclusively), in the folder
    entered and checked first (:func:`_pin_folder`); the content comes over the script's stdin
    (a here-document), never in a command line. ``owner`` set: all of it runs as that user (files
    in its home or on its mount). Otherwise root writes, only into a folder that no one but root
    can write to (:func:`_pin_folder`), and sets ``uid``:``gid`` and ``mode`` on its own temporary
    file before the rename; ``rename`` replaces whatever name is there and follows no link.
    """
    folder, name = posixpath.split(path)
    folder = folder or "."
    token = "TINSNIP_" + secrets.token_hex(8)  # never in base64's alphabet
    body = base64.encodebytes(content).decode()
    attrs = []
    if owner is None and uid is not None:
        attrs.append(f"chown -h {int(uid)}:{int(gid if gid is not None else uid)} -- \"$t\"")
    attrs.append(f"chmod {(mode if mode is not None else 0o644):04o} \"$t\"")
    steps = " && ".join(["base64 -d > \"$t\""] + attrs + [f"mv -fT -- \"$t\" {q(name)}"])
    script = (f"umask 077 && {_pin_folder(folder, root_writes=owner is None)}"
              f" && t=$(mktemp {q('./.' + name + '.XXXXXXXXXX')})"
              f" && {{ {steps} || {{ rm -f -- \"$t\"; false; }}; }}")
    text = f"( {script} )" if owner is None else _acting(owner, script)
    text += f" <<'{token}' || exit $?\n{body}{token}"
    who = f"as UID {owner}: " if owner is not None else ""
    return [Cmd(text, f"{who}write {len(content)} bytes to {path} through a new temporary file"
                      + (" (secret)" if secret else ""))]


@dataclass(frozen=True)
class File(ReadAsOwner):
    """A file with exact content; rewritten atomically only when the content differs.

    ``owner`` set: read and written as that user (files in its home or on its mount). A
    ``secret`` file (``KEY=value`` lines) is never read back whole: its fact reads the values of
    the ``public`` keys only (values that are no secret) and the names of the other keys, and
    its diff shows ``KEY=***`` for those."""

    path: str
    content: bytes
    uid: Optional[int] = None
    gid: Optional[int] = None
    mode: int = 0o644
    secret: bool = False
    owner: Optional[int] = None
    public: tuple = ()
    holds_secret: bool = False  # a file with a secret in it: its diff hides removed lines

    def describe(self):
        return f"file {self.path}"

    def owner_fact(self):
        p = q(self.path)
        return (f"h=; if s=$(stat -c {STAT} -- {p}); then echo \"$s\"; "
                f"if [ -f {p} ] && [ ! -L {p} ]; then h=$(sha256sum < {p}); echo \"$h\"; fi; "
                f"else echo {MISSING}; fi; " + self.after_digest())

    def after_digest(self):
        """What the fact prints after the stat and digest lines (in ``$h``): what is there
        now, for the diff a dry run shows: of a secret file only its keys, and the lines of its
        public keys (names checked: they go into a sed address). A link or anything but a
        regular file is reported by its stat line (and refused); what is there now is read only
        when it is not the content wanted."""
        p = q(self.path)
        public = [k for k in self.public if KEY_LINE.match(f"{k}=")]
        shown = "".join(f"-e {q(f'/^{k}=/{{p;d;}}')} " for k in public)
        now = (f"sed -n {shown}-e 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' {p}" if self.secret
               else f"head -c {DIFF_LIMIT} {p} | base64")
        want = hashlib.sha256(self.content).hexdigest()
        return (f"echo {NOW}; "
                f"if [ -f {p} ] && [ ! -L {p} ] && [ \"${{h%% *}}\" != {want} ]; then {now}; fi")

    def stat_read(self):
        return self.path, "file", self.after_digest()

    def parse(self, out):
        lines = out.split(NOW + "\n", 1)
        st, rest = _parse_stat_and(lines[0])
        if st is not None:
            st["sha256"] = rest[0].split()[0] if rest else ""
            st["now"] = lines[1] if len(lines) > 1 else ""
        return st

    def diff(self, out):
        fact = self.parse(out)
        if fact is not None and fact.get("sha256") == hashlib.sha256(self.content).hexdigest():
            return ""
        if self.secret:
            old = _env_lines(fact["now"].splitlines() if fact else [], self.public)
            new = _env_lines([l for l in self.content.decode(errors="replace").splitlines()
                              if KEY_LINE.match(l)], self.public)
            text = unified_diff(self.path, old, new)
            return text or f"--- {self.path}: values differ (secret values are not shown)\n"
        try:
            old = base64.b64decode(fact["now"]).decode() if fact else ""
            new = self.content.decode()
            if self.holds_secret:  # a line that goes may hold an old secret: not shown
                keep = set(new.splitlines())
                old = "".join(l if l.rstrip("\n") in keep else HIDDEN_LINE
                              for l in old.splitlines(keepends=True))
            return unified_diff(self.path, old, new)
        except (ValueError, UnicodeDecodeError):
            return f"--- {self.path}: binary content differs\n"

    def trace(self, out):
        fact = out.split(NOW + "\n", 1)
        return fact[0] + (f"\n{NOW} ({len(fact[1])} characters, shown only in a diff)"
                          if len(fact) > 1 and not self.secret else "")

    def commands(self, fact):
        gid = self.gid if self.gid is not None else self.uid
        if fact is not None and fact["type"] != "regular file":
            raise ConflictError(f"{self.path} is a {fact['type']}, not a file")
        uid = None if self.owner is not None else self.uid
        if (fact is None or fact["sha256"] != hashlib.sha256(self.content).hexdigest()
                or _attr_cmds(self.path, fact, uid, gid, self.mode)):
            # owner and mode are set on a fresh copy too, never on a name someone could swap
            return write_file_cmds(self.path, self.content, uid, gid, self.mode,
                                   secret=self.secret, owner=self.owner)
        return []


@dataclass(frozen=True)
class Edited(Resource):
    """A small text file changed by a pure function of its current text (a managed line in
    /etc/fstab or /etc/exports). Written atomically, keeping owner and mode exactly, only on a
    change; a link in its place is refused (tinsnip edits the file itself, never a link's
    target), and so is a folder around it that anyone but root can write.

    ``after`` commands run when the file changes; ``rollback`` makes a failed ``after``
    (say ``exportfs -ra`` refusing the new file) put the old file back before failing. With
    ``applied``, a stamp beside the file records the content ``after`` last succeeded on, and
    ``after`` runs again on every run until it has succeeded for the current content (a killed
    or failed ``exportfs -ra`` is retried).
    """

    path: str
    edit: Callable[[str], str]
    what: str
    after: tuple = ()
    rollback: bool = False
    applied: bool = False
    hidden: bool = False  # the diff says only that the file changes (digests of secret files)

    def describe(self):
        return f"{self.what} in {self.path}"

    @property
    def shared_file(self):
        return self.path

    def merged(self, other):
        """One edit doing this one then ``other``, when ``other`` edits the same file with the
        same ``after`` commands and handling: one write, ``after`` run once."""
        if not isinstance(other, Edited) or other.path != self.path or (
                (self.after, self.rollback, self.applied, self.hidden)
                != (other.after, other.rollback, other.applied, other.hidden)):
            return None
        first, then = self.edit, other.edit
        return Edited(self.path, lambda text: then(first(text)), f"{self.what}; {other.what}",
                      self.after, self.rollback, self.applied, self.hidden)

    def fact_after(self, out):
        fact = self.parse(out)
        fact = fact["file"] if self.applied else fact
        new = self.edit(fact["text"] if fact else "").encode("utf-8", "surrogateescape")
        uid, gid, mode = (fact["uid"], fact["gid"], fact["mode"]) if fact else (0, 0, 0o644)
        after = f"{stat.S_IFREG | mode:x}:{uid}:{gid}\n{base64.encodebytes(new).decode()}"
        if self.applied:  # its `after` commands have succeeded on the new content
            after += f"@@applied\n{hashlib.sha256(new).hexdigest()}\n"
        return after

    def diff(self, out):
        fact = self.parse(out)
        fact = fact["file"] if self.applied else fact
        old = fact["text"] if fact else ""
        try:
            new = self.edit(old)
        except ForeignLine:
            return ""
        if self.hidden:
            return f"--- {self.path}: {self.what} changes (not shown)\n" if new != old else ""
        return unified_diff(self.path, old, new)

    @property
    def stamp(self) -> str:
        folder, name = posixpath.split(self.path)
        return posixpath.join(folder, f".{name}.tinsnip-applied")

    def _lock_and_check(self, fact) -> Cmd:
        """Hold a lock on the file for the rest of the script and make sure it is still what
        the fact saw; another run that edited it meanwhile makes this exit 75 (read again)."""
        p = q(self.path)
        if fact:
            same = (f"[ ! -L {p} ] && [ \"$(sha256sum < {p} | cut -c1-64)\" = "
                    f"{hashlib.sha256(fact['raw']).hexdigest()} ]")
        else:
            same = f"[ ! -e {p} ] && [ ! -L {p} ]"
        folder = posixpath.dirname(self.path) or "."
        check = _pin_folder(folder, root_writes=True)
        return Cmd(_fails_whole(f"( {check} ) && exec 8>>{q(self.path + '.tinsnip-lock')} && "
                                f"flock -w 60 8 && {{ {same} || exit {RETRY_EXIT}; }}"),
                   f"lock {self.path} and check it is unchanged")

    def fact_command(self):
        cmd = _stat_and(self.path, "base64")
        return f"{cmd}; {self._applied()}" if self.applied else cmd

    def _applied(self) -> str:
        """Shell printing the stamp of the content ``after`` last succeeded on."""
        return f"echo @@applied; cat {q(self.stamp)}"

    def stat_read(self):
        return self.path, "read", self._applied() if self.applied else ""

    def parse(self, out):
        out, _, stamp = out.partition("@@applied")
        st, rest = _parse_stat_and(out)
        if st is not None:
            st["raw"] = base64.b64decode("".join(rest)) if st["type"] == "regular file" else b""
            # bytes that are not UTF-8 pass through the edit unchanged
            st["text"] = st["raw"].decode("utf-8", "surrogateescape")
        return st if not self.applied else {"file": st, "applied": stamp.strip()}

    def commands(self, fact):
        applied = fact["applied"] if self.applied else None
        fact = fact["file"] if self.applied else fact
        if fact is not None and fact["type"] != "regular file":
            raise ConflictError(f"{self.path} is a {fact['type']}, not a regular "
                                "file; tinsnip edits only the file itself")
        old = fact["text"] if fact else ""
        try:
            new = self.edit(old)
        except ForeignLine as e:
            raise ConflictError(f"{self.path}: {e}") from None
        data = new.encode("utf-8", "surrogateescape")
        if new == old:
            if not self.applied or applied == hashlib.sha256(data).hexdigest() or not fact:
                return []
            # the file is as wanted but `after` never succeeded on it: run it again
            return [self._lock_and_check(fact), *self._after_cmds(None),
                    *self._stamp_cmds(data), Cmd("exec 8>&-", f"unlock {self.path}")]
        uid, gid, mode = (fact["uid"], fact["gid"], fact["mode"]) if fact else (0, 0, 0o644)
        cmds = [self._lock_and_check(fact)]
        backup = fact and self.rollback and self.after
        if backup:
            folder, name = posixpath.split(self.path)
            cmds.append(Cmd(_fails_whole(
                f"b=$(mktemp {q(posixpath.join(folder, '.' + name + '.old.XXXXXXXXXX'))})"
                f" && cp -p -- {q(self.path)} \"$b\""), f"keep a copy of {self.path}"))
        cmds += write_file_cmds(self.path, data, uid, gid, mode)
        cmds += self._after_cmds("$b" if backup else None)
        if backup:
            cmds.append(Cmd("rm -f -- \"$b\"", "drop the copy"))
        cmds += self._stamp_cmds(data)
        cmds.append(Cmd("exec 8>&-", f"unlock {self.path}"))
        return cmds

    def _after_cmds(self, backup: Optional[str]) -> list[Cmd]:
        out = []
        for a in self.after:
            # 8>&-: a daemon that `a` may start must not inherit (and so keep) the lock
            run_a = f"{a} 8>&-"
            if backup:
                restore = f"{{ mv -fT -- \"{backup}\" {q(self.path)}; {run_a}; false; }}"
                out.append(Cmd(f"{run_a} || {restore}", f"{a} (on failure: put the old {self.path} back)"))
            else:
                out.append(Cmd(run_a, a))
        return out

    def _stamp_cmds(self, data: bytes) -> list[Cmd]:
        if not self.applied:
            return []
        digest = hashlib.sha256(data).hexdigest()
        return [Cmd(c.text, f"record that {' and '.join(self.after)} succeeded on this {self.path}")
                for c in write_file_cmds(self.stamp, (digest + "\n").encode(), 0, 0, 0o644)]


class ForeignLine(ValueError):
    """A line for the same path that tinsnip did not write."""


MARKER = "# tinsnip: "


def _entries(text: str) -> list[list[str]]:
    """The file's raw lines grouped into entries: a line ending in ``\\`` continues on the next."""
    groups, current = [], []
    for raw in text.splitlines():
        current.append(raw)
        if raw.endswith("\\") and not raw.lstrip().startswith("#"):
            continue
        groups.append(current)
        current = []
    if current:
        groups.append(current)
    return groups


def _fields(entry: list[str]) -> list[str]:
    """Whitespace-separated fields of an entry; ``"..."`` keeps spaces inside one field."""
    text = " ".join(l[:-1] if l.endswith("\\") else l for l in entry)
    if text.lstrip().startswith("#"):
        return []
    if '"' not in text:
        return text.split()
    out, cur, quoted, started = [], [], False, False
    for ch in text:
        if ch == '"':
            quoted, started = not quoted, True
        elif ch.isspace() and not quoted:
            if started:
                out.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if started:
        out.append("".join(cur))
    return out


def same_path(a: str, b: str) -> bool:
    """Two spellings of one path: quotes, fstab's octal escapes (``\\040``), a trailing
    slash or doubled slashes do not make a different path."""
    def norm(p):
        p = p.strip('"')
        if "\\" in p:
            p = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p)
        return posixpath.normpath(p) if p else p
    return norm(a) == norm(b)


@dataclass(frozen=True)
class field_is:  # noqa: N801 - reads as a predicate: set_line(field_is(1, "/mnt/x"), line)
    """Match an entry whose whitespace-separated field ``index`` is the path ``value``."""

    index: int
    value: str

    def __call__(self, entry) -> bool:
        fields = _fields([entry] if isinstance(entry, str) else entry)
        return len(fields) > self.index and same_path(fields[self.index], self.value)


def _foreign(entry: list[str], path: str, marker: str) -> ForeignLine:
    shown = " ".join(x.strip() for x in entry)
    return ForeignLine(f"the line {shown!r} is for {path} too and tinsnip did not write it; "
                       f"remove it, or put `{marker}` above it to let tinsnip manage it")


def set_line(match: field_is, line: str) -> Callable[[str], str]:
    """An edit that keeps exactly one entry matching ``match`` and makes it ``line``.

    The line goes below a marker comment (``# tinsnip: PATH``). An entry for the same path is
    updated in place when tinsnip wrote it (the marker is above it, or it is already exactly
    ``line``); any other entry for that path raises :class:`ForeignLine` naming it, because
    replacing it would drop what someone else set up (other clients, other options)."""
    marker = MARKER + match.value

    def edit(text: str) -> str:
        groups = _entries(text)
        out, placed = [], False
        for i, g in enumerate(groups):
            if g == [marker]:
                continue  # ours; written again with its line below
            if not match(g):
                out.append(g)
                continue
            ours = (i > 0 and groups[i - 1] == [marker]) or g == [line]
            if not ours:
                raise _foreign(g, match.value, marker)
            if not placed:
                out.append([marker, line])
                placed = True
        if not placed:
            out.append([marker, line])
        return "\n".join(l for g in out for l in g) + "\n"

    return edit


@dataclass(frozen=True)
class Symlink(ReadAsOwner):
    """A symbolic link pointing at ``target``; with ``owner``, made by that user (in its home)."""

    link: str
    target: str
    uid: Optional[int] = None
    owner: Optional[int] = None

    def describe(self):
        return f"link {self.link} -> {self.target}"

    def owner_fact(self):
        return (f"l=$(QUOTING_STYLE=escape stat -c '{STAT_N}' -- {q(self.link)} 2>/dev/null) "
                f"|| l={MISSING}; {_link_fact('l')}")

    def stat_read(self):
        return self.link, "link", ""

    def parse(self, out):
        lines = out.strip().splitlines() or [MISSING]
        if lines[0] == "link":
            return {"target": lines[1] if len(lines) > 1 else ""}
        return lines[0]

    def commands(self, fact):
        if fact == "other":
            raise ConflictError(f"{self.link} exists and is not a link")
        if isinstance(fact, dict) and fact["target"] == self.target:
            return []
        if self.owner is not None:
            return [Cmd(as_uid(self.owner, sh("ln", "-sfn", "--", self.target, self.link)),
                        f"as UID {self.owner}: ln -sfn {self.target} {self.link}")]
        cmds = [Cmd(sh("ln", "-sfn", "--", self.target, self.link))]
        if self.uid is not None:
            cmds.append(Cmd(sh("chown", "-h", f"{self.uid}:{self.uid}", "--", self.link)))
        return cmds


USERS_LOCK = "/etc/passwd.tinsnip-lock"


@dataclass(frozen=True)
class User(Resource):
    """A system user and its group, both numbered ``uid``, with a subordinate ID range."""

    name: str
    uid: int
    home: str
    subid_start: int
    subid_count: int = 65536
    shell: str = "/bin/bash"

    def describe(self):
        return f"user {self.name} ({self.uid})"

    def fact_command(self):
        return self.joint_fact([self])

    @classmethod
    def joint_fact(cls, resources):
        # three processes for all the accounts of a host: the groups and the accounts each
        # looked up by name and by number in one getent, the subordinate ranges in one grep
        keys = " ".join(f"{q(r.name)} {r.uid}" for r in resources)
        names = " ".join(f"-e ^{q(r.name)}:" for r in resources)
        return (f"echo @group; getent group {keys}; echo @passwd; getent passwd {keys}; "
                f"echo @sub; grep -H {names} /etc/subuid /etc/subgid")

    def parse(self, out):
        """``G``/``GU``: the group named ``name`` / numbered ``uid``; ``P``/``PU``: the same for
        the account; ``SU``/``SG``: the user's lines in /etc/subuid and /etc/subgid."""
        fact, section = {}, ""
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("@"):
                section = line[1:]
                continue
            if section in ("group", "passwd"):
                fields = line.split(":")
                if len(fields) < 3:
                    continue
                key = "G" if section == "group" else "P"
                if fields[0] == self.name:
                    fact.setdefault(key, line)
                if fields[2] == str(self.uid):
                    fact.setdefault(key + "U", line)
            elif section == "sub":
                path, _, entry = line.partition(":")
                key = {"/etc/subuid": "SU", "/etc/subgid": "SG"}.get(path)
                if key and entry.startswith(self.name + ":"):
                    fact[key] = f"{fact[key]} {entry}" if key in fact else entry
        return fact

    def commands(self, fact):
        want_sub = f"{self.name}:{self.subid_start}:{self.subid_count}"
        cmds = []
        group, group_by_id = fact.get("G", ""), fact.get("GU", "")
        if group_by_id and not group_by_id.startswith(self.name + ":"):
            raise ConflictError(f"GID {self.uid} belongs to group {group_by_id.split(':')[0]}")
        if group and group.split(":")[2] != str(self.uid):
            raise ConflictError(f"group {self.name} exists with GID {group.split(':')[2]}, not {self.uid}")
        n = q(self.name)
        if not group:
            cmds.append(self._unless(f"getent group {n} >/dev/null",
                                     sh("groupadd", "-g", self.uid, self.name)))
        user, user_by_id = fact.get("P", ""), fact.get("PU", "")
        if user_by_id and not user_by_id.startswith(self.name + ":"):
            raise ConflictError(f"UID {self.uid} belongs to user {user_by_id.split(':')[0]}")
        if user and user.split(":")[2] != str(self.uid):
            raise ConflictError(f"user {self.name} exists with UID {user.split(':')[2]}, not {self.uid}")
        if not user:
            # -K ...=0: no automatic subordinate range; ours (below) is the only one
            cmds.append(self._unless(f"getent passwd {n} >/dev/null", sh(
                "useradd", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", "-u", self.uid,
                "-g", self.uid, "-m", "-d", self.home, "-s", self.shell, self.name)))
        rng = f"{self.subid_start}-{self.subid_start + self.subid_count - 1}"
        for kind, key in (("subuids", "SU"), ("subgids", "SG")):
            if want_sub not in fact.get(key, "").split():
                cmds.append(self._unless(f"grep -qxF {q(want_sub)} /etc/sub{kind[3:6]}",
                                         sh("usermod", f"--add-{kind}", rng, self.name)))
        if not cmds:
            return []
        # Two runs for the same machine-environment at once: under one lock, the second finds
        # what the first made and makes nothing; then both check the IDs are the wanted ones.
        ids = q(f"{self.uid}:{self.uid}")
        wrong = f"user {self.name} or its group does not have the ID {self.uid} after the change"
        return [Cmd(_fails_whole(f"exec 7>>{USERS_LOCK} && flock -w 60 7"),
                    f"lock {USERS_LOCK}"), *cmds,
                Cmd(f"[ \"$(id -u {n}):$(getent group {n} | cut -d: -f3)\" = {ids} ] || "
                    f"{_refuse(wrong)}", f"check {self.name} is {self.uid}:{self.uid}"),
                Cmd("exec 7>&-", f"unlock {USERS_LOCK}")]

    @staticmethod
    def _unless(done: str, command: str) -> Cmd:
        return Cmd(f"{done} || {command}", command)


@dataclass(frozen=True)
class Mounted(Resource):
    """``mount_point`` is mounted from ``source`` (through its /etc/fstab line)."""

    mount_point: str
    source: str

    def describe(self):
        return f"mount {self.source} on {self.mount_point}"

    def fact_command(self):
        return mounts_on(self.mount_point, '"$dev $kind"')

    def parse(self, out):
        lines = out.strip().splitlines()
        return lines[-1].split() if lines else None

    def commands(self, fact):
        if fact is None:
            # another run that mounted it meanwhile (same source) is as good as this one
            mine = (f"awk -v m={q(self.mount_point)} -v s={q(self.source)} "
                    "'$2 == m && $1 == s {f = 1} END {exit !f}' /proc/mounts")
            return [Cmd(f"{sh('mount', self.mount_point)} || {mine}",
                        f"mount {self.mount_point}")]
        if fact[0] != self.source:
            raise ConflictError(f"{self.mount_point} already has {fact[0]} mounted")
        return []


def drop_ours(match: field_is, *, also: tuple = ()) -> Callable[[str], str]:
    """An edit that removes the entries for ``match``'s path that tinsnip wrote (its marker is
    above them, or they are exactly one of ``also``) and raises :class:`ForeignLine` naming any
    other: what moving a mount point elsewhere asks."""
    marker = MARKER + match.value

    def edit(text: str) -> str:
        groups = _entries(text)
        kept = []
        for i, g in enumerate(groups):
            if g == [marker]:
                continue
            if match(g):
                if not ((i > 0 and groups[i - 1] == [marker]) or (len(g) == 1 and g[0] in also)):
                    raise _foreign(g, match.value, marker)
                continue
            kept.append(g)
        return "\n".join(l for g in kept for l in g) + "\n" if kept else ""

    return edit


def drop_lines(match: field_is) -> Callable[[str], str]:
    """An edit that removes every entry for ``match``'s path (spelled any way :func:`same_path`
    knows), with tinsnip's marker above it: what removing a mount point or an export asks."""
    marker = MARKER + match.value

    def edit(text: str) -> str:
        kept = [g for g in _entries(text) if g != [marker] and not match(g)]
        return "\n".join(l for g in kept for l in g) + "\n" if kept else ""

    return edit


@dataclass(frozen=True)
class Absent(ReadAsOwner):
    """Nothing at ``path``. With ``owner`` (a UID) the check and the removal run as that user (a
    tree on an NFS mount that belongs to the user); ``rm`` follows no link either way."""

    path: str
    owner: Optional[int] = None

    def describe(self):
        return f"no {self.path}"

    def owner_fact(self):
        p = q(self.path)
        return f"if [ -e {p} ] || [ -L {p} ]; then echo present; else echo {MISSING}; fi"

    def parse(self, out):
        return out.strip() == "present"

    def commands(self, fact):
        if not fact:
            return []
        return [Cmd(_acting(self.owner, sh("rm", "-rf", "--one-file-system", self.path)),
                    f"rm -rf {self.path}" + (f" as UID {self.owner}" if self.owner else ""))]


@dataclass(frozen=True)
class Unmounted(Resource):
    """Nothing is mounted on ``mount_point``, and the empty mount point folder is gone."""

    mount_point: str

    def describe(self):
        return f"nothing mounted on {self.mount_point}"

    def fact_command(self):
        p = q(self.mount_point)
        return (f"{mounts_on(self.mount_point, 'mounted')}; "
                f"if [ -L {p} ]; then echo link; elif [ -d {p} ]; then echo folder; fi")

    def parse(self, out):
        return set(out.split())

    def commands(self, fact):
        cmds = []
        if "mounted" in fact:
            cmds.append(Cmd(sh("umount", self.mount_point)))
        if "link" in fact:  # a link root made to the mount behind the gate: removed, not followed
            cmds.append(Cmd(sh("rm", "-f", "--", self.mount_point)))
        elif fact:
            cmds.append(Cmd(sh("rmdir", self.mount_point)))
        return cmds


@dataclass(frozen=True)
class UserAbsent(Resource):
    """No user or group ``name`` (home folder removed), and no subordinate ID lines for it.

    Only the user tinsnip made is removed: a user or group of that name with another ID than
    ``uid`` is refused."""

    name: str
    uid: int
    home: str

    def describe(self):
        return f"no user {self.name}"

    def fact_command(self):
        n = q(self.name)
        return (f"echo user=$(getent passwd {n} | cut -d: -f3); "
                f"echo group=$(getent group {n} | cut -d: -f3); "
                f"grep -q ^{n}: /etc/subuid && echo subuid=yes; "
                f"grep -q ^{n}: /etc/subgid && echo subgid=yes; "
                f"[ -d {q(self.home)} ] && echo home=yes")

    def parse(self, out):
        return {k: v for k, _, v in (l.partition("=") for l in out.split()) if v}

    def commands(self, fact):
        for kind in ("user", "group"):
            if fact.get(kind) and fact[kind] != str(self.uid):
                raise ConflictError(f"{kind} {self.name} has ID {fact[kind]}, not {self.uid}: "
                                    "tinsnip did not make it and leaves it alone")
        cmds = []
        if "user" in fact:
            cmds.append(Cmd(sh("userdel", self.name)))
        if "user" in fact or "home" in fact:
            cmds.append(Cmd(sh("rm", "-rf", "--one-file-system", self.home)))
        if "group" in fact:
            cmds.append(Cmd(f"! getent group {q(self.name)} >/dev/null || {sh('groupdel', self.name)}",
                            f"groupdel {self.name}"))
        for f in ("subuid", "subgid"):
            if f in fact:
                cmds.append(Cmd(f"sed -i {q('/^' + self.name + ':/d')} /etc/{f}"))
        return cmds
