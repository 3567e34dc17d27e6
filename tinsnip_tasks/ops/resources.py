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
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import ConflictError
from .base import RETRY_EXIT, Cmd, Resource, b64, q, sh

MISSING = "missing"


def _stat_cmd(path: str) -> str:
    return f"stat -c '%F:%u:%g:%a' {q(path)} || echo {MISSING}"


def parse_stat(line: str) -> Optional[dict]:
    """``regular file:10100:10100:640`` -> dict, or None when the path is missing."""
    line = line.strip().splitlines()[0] if line.strip() else MISSING
    if line == MISSING:
        return None
    kind, uid, gid, mode = line.rsplit(":", 3)
    return {"type": kind, "uid": int(uid), "gid": int(gid), "mode": int(mode, 8)}


def _stat_and(path: str, body: str) -> str:
    """Stat line of ``path`` then the output of ``body`` (a command reading ``path``), or
    ``missing``."""
    p = q(path)
    return f"if [ -f {p} ]; then stat -c '%F:%u:%g:%a' {p}; {body} < {p}; else echo {MISSING}; fi"


def _parse_stat_and(out: str) -> tuple[Optional[dict], list[str]]:
    lines = out.strip().splitlines()
    return parse_stat(lines[0] if lines else MISSING), lines[1:]


NOW = "@@now"
DIFF_LIMIT = 65536  # bytes of a file read for the diff of a dry run
KEY_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def masked(keys) -> str:
    """``KEY=***`` lines: what a diff shows of a secret file."""
    return "".join(f"{k}=***\n" for k in keys)


def unified_diff(path: str, old: str, new: str) -> str:
    """``diff -u`` of a file's old and new text, as a person reads it in a dry run."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        f"{path} (now)", f"{path} (wanted)"))


def _attr_cmds(path: str, fact: Optional[dict], uid, gid, mode, *, link=False) -> list[Cmd]:
    out = []
    if uid is not None and (fact is None or fact["uid"] != uid or fact["gid"] != gid):
        out.append(Cmd(sh("chown", *(["-h"] if link else []), f"{uid}:{gid}", path)))
    if mode is not None and (fact is None or fact["mode"] != mode):
        out.append(Cmd(sh("chmod", f"{mode:o}", path)))
    return out


@dataclass(frozen=True)
class Directory(Resource):
    """A folder, with owner and mode when they are given."""

    path: str
    uid: Optional[int] = None
    gid: Optional[int] = None
    mode: Optional[int] = None

    def describe(self):
        return f"folder {self.path}"

    def fact_command(self):
        return _stat_cmd(self.path)

    def parse(self, out):
        return parse_stat(out)

    def commands(self, fact):
        if fact is not None and fact["type"] != "directory":
            raise ConflictError(f"{self.path} is a {fact['type']}, not a folder")
        out = [] if fact else [Cmd(sh("mkdir", "-p", self.path))]
        return out + _attr_cmds(self.path, fact, self.uid,
                                self.gid if self.gid is not None else self.uid, self.mode)


def write_file_cmds(path: str, content: bytes, uid, gid, mode, *, secret: bool) -> list[Cmd]:
    """Write ``content`` to a temporary file beside ``path`` and rename it into place, so a
    reader never sees half a file and a failure leaves the old file whole."""
    tmp = posixpath.join(posixpath.dirname(path) or ".", "." + posixpath.basename(path) + ".tinsnip-new")
    text = f"(umask 077 && printf %s {q(b64(content))} | base64 -d > {q(tmp)})"
    cmds = [Cmd(text, f"write {len(content)} bytes to {tmp}" + (" (secret)" if secret else ""))]
    if uid is not None:
        cmds.append(Cmd(sh("chown", f"{uid}:{gid if gid is not None else uid}", tmp)))
    cmds.append(Cmd(sh("chmod", f"{(mode if mode is not None else 0o644):o}", tmp)))
    cmds.append(Cmd(sh("mv", "-f", tmp, path)))
    return cmds


@dataclass(frozen=True)
class File(Resource):
    """A file with exact content; rewritten atomically only when the content differs."""

    path: str
    content: bytes
    uid: Optional[int] = None
    gid: Optional[int] = None
    mode: int = 0o644
    secret: bool = False

    def describe(self):
        return f"file {self.path}"

    def fact_command(self):
        p = q(self.path)
        # what is there now, for the diff a dry run shows: of a secret file only its keys
        now = (f"sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' {p}" if self.secret
               else f"head -c {DIFF_LIMIT} {p} | base64")
        # something other than a file there is reported as such (and refused below)
        return f"if [ -e {p} ] && [ ! -f {p} ]; then {_stat_cmd(self.path)}; " \
               f"else {_stat_and(self.path, 'sha256sum')} && echo {NOW} && {now}; fi"

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
            old = masked(fact["now"].split() if fact else [])
            new_keys = [l.split("=", 1)[0] for l in self.content.decode(errors="replace").splitlines()
                        if KEY_LINE.match(l)]
            text = unified_diff(self.path, old, masked(new_keys))
            return text or f"--- {self.path}: values differ (secret file: values are not shown)\n"
        try:
            old = base64.b64decode(fact["now"]).decode() if fact else ""
            return unified_diff(self.path, old, self.content.decode())
        except (ValueError, UnicodeDecodeError):
            return f"--- {self.path}: binary content differs\n"

    def commands(self, fact):
        gid = self.gid if self.gid is not None else self.uid
        if fact is not None and fact["type"] != "regular file":
            raise ConflictError(f"{self.path} is a {fact['type']}, not a file")
        if fact is None or fact["sha256"] != hashlib.sha256(self.content).hexdigest():
            return write_file_cmds(self.path, self.content, self.uid, gid, self.mode,
                                   secret=self.secret)
        return _attr_cmds(self.path, fact, self.uid, gid, self.mode)


@dataclass(frozen=True)
class Edited(Resource):
    """A small text file changed by a pure function of its current text (a managed line in
    /etc/fstab or /etc/exports). Written atomically, keeping owner and mode, only on a change.

    ``after`` commands run only when the file changes; ``rollback`` makes a failed ``after``
    (say ``exportfs -ra`` refusing the new file) put the old file back before failing.
    """

    path: str
    edit: Callable[[str], str]
    what: str
    after: tuple = ()
    rollback: bool = False

    def describe(self):
        return f"{self.what} in {self.path}"

    @property
    def shared_file(self):
        return self.path

    def diff(self, out):
        fact = self.parse(out)
        old = fact["text"] if fact else ""
        return unified_diff(self.path, old, self.edit(old))

    def _lock_and_check(self, fact) -> Cmd:
        """Hold a lock on the file for the rest of the script and make sure it is still what
        the fact saw; another run that edited it meanwhile makes this exit 75 (read again)."""
        p = q(self.path)
        if fact:
            same = (f"[ \"$(sha256sum < {p} | cut -c1-64)\" = "
                    f"{hashlib.sha256(fact['raw']).hexdigest()} ]")
        else:
            same = f"[ ! -e {p} ]"
        return Cmd(f"exec 8>>{q(self.path + '.tinsnip-lock')} && flock -w 60 8 && "
                   f"{{ {same} || exit {RETRY_EXIT}; }}",
                   f"lock {self.path} and check it is unchanged")

    def fact_command(self):
        return _stat_and(self.path, "base64")

    def parse(self, out):
        st, rest = _parse_stat_and(out)
        if st is not None:
            st["raw"] = base64.b64decode("".join(rest))
            st["text"] = st["raw"].decode()
        return st

    def commands(self, fact):
        old = fact["text"] if fact else ""
        new = self.edit(old)
        if new == old:
            return []
        uid, gid, mode = (fact["uid"], fact["gid"], fact["mode"]) if fact else (0, 0, 0o644)
        cmds = [self._lock_and_check(fact)]
        if self.rollback and fact:
            backup = self.path + ".tinsnip-old"
            cmds.append(Cmd(sh("cp", "-p", self.path, backup)))
        cmds += write_file_cmds(self.path, new.encode(), uid, gid, mode, secret=False)
        for a in self.after:
            # 8>&-: a daemon that `a` may start must not inherit (and so keep) the lock
            run_a = f"{a} 8>&-"
            if self.rollback and fact:
                restore = f"{{ mv -f {q(backup)} {q(self.path)}; {run_a}; false; }}"
                cmds.append(Cmd(f"{run_a} || {restore}", f"{a} (on failure: put the old {self.path} back)"))
            else:
                cmds.append(Cmd(run_a, a))
        cmds.append(Cmd("exec 8>&-", f"unlock {self.path}"))
        return cmds


def set_line(match: Callable[[str], bool], line: str) -> Callable[[str], str]:
    """An edit that keeps exactly one line matching ``match`` and makes it ``line``."""

    def edit(text: str) -> str:
        lines = text.splitlines()
        kept, placed = [], False
        for existing in lines:
            if match(existing):
                if not placed:
                    kept.append(line)
                    placed = True
                continue
            kept.append(existing)
        if not placed:
            kept.append(line)
        return "\n".join(kept) + "\n"

    return edit


def field_is(index: int, value: str) -> Callable[[str], bool]:
    """Match a non-comment line whose whitespace-separated field ``index`` equals ``value``."""

    def match(line: str) -> bool:
        fields = line.split()
        return bool(fields) and not fields[0].startswith("#") and len(fields) > index \
            and fields[index] == value

    return match


@dataclass(frozen=True)
class Symlink(Resource):
    """A symbolic link pointing at ``target``."""

    link: str
    target: str
    uid: Optional[int] = None

    def describe(self):
        return f"link {self.link} -> {self.target}"

    def fact_command(self):
        p = q(self.link)
        return (f"if [ -L {p} ]; then echo link; readlink {p}; "
                f"elif [ -e {p} ]; then echo other; else echo {MISSING}; fi")

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
        cmds = [Cmd(sh("ln", "-sfn", self.target, self.link))]
        if self.uid is not None:
            cmds.append(Cmd(sh("chown", "-h", f"{self.uid}:{self.uid}", self.link)))
        return cmds


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
        n, u = q(self.name), q(str(self.uid))
        return (f"echo G=$(getent group {n}); echo GU=$(getent group {u}); "
                f"echo P=$(getent passwd {n}); echo PU=$(getent passwd {u}); "
                f"echo SU=$(grep ^{n}: /etc/subuid); echo SG=$(grep ^{n}: /etc/subgid)")

    def parse(self, out):
        fact = {}
        for line in out.splitlines():
            key, _, value = line.partition("=")
            fact[key] = value.strip()
        return fact

    def commands(self, fact):
        want_sub = f"{self.name}:{self.subid_start}:{self.subid_count}"
        cmds = []
        group, group_by_id = fact.get("G", ""), fact.get("GU", "")
        if group_by_id and not group_by_id.startswith(self.name + ":"):
            raise ConflictError(f"GID {self.uid} belongs to group {group_by_id.split(':')[0]}")
        if group and group.split(":")[2] != str(self.uid):
            raise ConflictError(f"group {self.name} exists with GID {group.split(':')[2]}, not {self.uid}")
        if not group:
            cmds.append(Cmd(sh("groupadd", "-g", self.uid, self.name)))
        user, user_by_id = fact.get("P", ""), fact.get("PU", "")
        if user_by_id and not user_by_id.startswith(self.name + ":"):
            raise ConflictError(f"UID {self.uid} belongs to user {user_by_id.split(':')[0]}")
        if user and user.split(":")[2] != str(self.uid):
            raise ConflictError(f"user {self.name} exists with UID {user.split(':')[2]}, not {self.uid}")
        if not user:
            # -K ...=0: no automatic subordinate range; ours (below) is the only one
            cmds.append(Cmd(sh("useradd", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0",
                               "-u", self.uid, "-g", self.uid, "-m", "-d", self.home,
                               "-s", self.shell, self.name)))
        rng = f"{self.subid_start}-{self.subid_start + self.subid_count - 1}"
        if want_sub not in fact.get("SU", "").split():
            cmds.append(Cmd(sh("usermod", "--add-subuids", rng, self.name)))
        if want_sub not in fact.get("SG", "").split():
            cmds.append(Cmd(sh("usermod", "--add-subgids", rng, self.name)))
        return cmds


@dataclass(frozen=True)
class Mounted(Resource):
    """``mount_point`` is mounted from ``source`` (through its /etc/fstab line)."""

    mount_point: str
    source: str

    def describe(self):
        return f"mount {self.source} on {self.mount_point}"

    def fact_command(self):
        return f"awk -v m={q(self.mount_point)} '$2 == m {{print $1, $3}}' /proc/mounts"

    def parse(self, out):
        lines = out.strip().splitlines()
        return lines[-1].split() if lines else None

    def commands(self, fact):
        if fact is None:
            return [Cmd(sh("mount", self.mount_point))]
        if fact[0] != self.source:
            raise ConflictError(f"{self.mount_point} already has {fact[0]} mounted")
        return []


def drop_lines(match: Callable[[str], bool]) -> Callable[[str], str]:
    """An edit that removes every line matching ``match``."""

    def edit(text: str) -> str:
        kept = [line for line in text.splitlines() if not match(line)]
        return "\n".join(kept) + "\n" if kept else ""

    return edit


@dataclass(frozen=True)
class Absent(Resource):
    """Nothing at ``path``. With ``user`` the removal runs as that user (a tree on an NFS mount
    that belongs to the user); root never follows a link it did not make (``rm`` does not)."""

    path: str
    user: Optional[str] = None

    def describe(self):
        return f"no {self.path}"

    def fact_command(self):
        p = q(self.path)
        return f"if [ -e {p} ] || [ -L {p} ]; then echo present; else echo {MISSING}; fi"

    def parse(self, out):
        return out.strip() == "present"

    def commands(self, fact):
        if not fact:
            return []
        rm = sh("rm", "-rf", "--one-file-system", self.path)
        return [Cmd(f"sudo -u {q(self.user)} {rm}" if self.user else rm)]


@dataclass(frozen=True)
class Unmounted(Resource):
    """Nothing is mounted on ``mount_point``, and the empty mount point folder is gone."""

    mount_point: str

    def describe(self):
        return f"nothing mounted on {self.mount_point}"

    def fact_command(self):
        return (f"awk -v m={q(self.mount_point)} '$2 == m {{print \"mounted\"}}' /proc/mounts; "
                f"[ -d {q(self.mount_point)} ] && echo folder")

    def parse(self, out):
        return set(out.split())

    def commands(self, fact):
        cmds = []
        if "mounted" in fact:
            cmds.append(Cmd(sh("umount", self.mount_point)))
        if fact:
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
