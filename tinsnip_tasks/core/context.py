"""A service folder as a build context: which files go (``.dockerignore``), their digest, a tar.

Pure apart from reading the folder. The rules follow Docker's own ``.dockerignore``: one pattern a
line, ``#`` comments, ``*`` and ``?`` within one path part, ``**`` across parts, a leading ``!``
takes files back, the last matching line wins, and a pattern that matches a folder matches
everything under it. The Dockerfile and ``.dockerignore`` are always sent (Docker sends them too).

A service folder holds files and folders only: a link, FIFO, socket or device among what tinsnip
reads or uploads is refused naming its path (:func:`context_files`), and every file is opened
through :func:`open_file`, which follows no link on the way (each folder is entered with
``O_NOFOLLOW``) and never blocks on a FIFO (``O_NONBLOCK``), so nothing outside the folder is
read and nothing hangs even when the folder changes between the check and the read.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

#: Never uploaded: compose's own ``.env`` of the folder (the deploy writes its own), the compose
#: file and its template (the deploy writes docker-compose.yml itself).
NEVER = (".env", "docker-compose.yml", "docker-compose.yml.j2")
ALWAYS = ("Dockerfile", ".dockerignore")
#: Read by tinsnip itself (the deploy's own files), checked whether uploaded or not.
READ = ("docker-compose.yml", "docker-compose.yml.j2", "service.env", "service.env.j2",
        "service.yaml", ".dockerignore")

_KINDS = {stat.S_IFLNK: "a link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def refuse(path, mode: int):
    """:raises InputError: ``path`` (of kind ``mode``) is not a file or folder."""
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise InputError(f"{path} is {kind}: a service folder may hold only files and folders "
                     "(tinsnip follows no link and opens nothing else there); replace it by a "
                     "file or list it in .dockerignore")


def _open_dir(fd: int, name: str, shown) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=fd)
    except FileNotFoundError:
        raise
    except OSError as e:
        st = _lstat(name, fd)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            refuse(shown, st.st_mode)
        raise InputError(f"{shown} cannot be read: {e.strerror}") from None


def _lstat(name, fd: int | None = None):
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None


def open_file(root: Path, rel: str):
    """The regular file ``rel`` of the folder ``root``, opened for reading in binary.

    No link is followed, neither ``rel`` itself nor a folder on its way; a FIFO, socket or
    device is refused without waiting on it.

    :raises InputError: naming the path, when it is not a regular file or cannot be read.
    :raises FileNotFoundError: when it does not exist.
    """
    parts = [p for p in rel.split("/") if p]
    if not parts or rel.startswith("/") or any(p in (".", "..") for p in parts):
        raise InputError(f"{rel!r} is not a path inside {root}")
    shown = Path(root) / rel
    try:
        fd = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise InputError(f"the service folder {root} cannot be read: {e.strerror}") from None
    try:
        for i, part in enumerate(parts[:-1]):
            new = _open_dir(fd, part, Path(root).joinpath(*parts[:i + 1]))
            os.close(fd)
            fd = new
        try:
            f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                        dir_fd=fd)
        except FileNotFoundError:
            raise
        except OSError as e:
            st = _lstat(parts[-1], fd)
            if st is not None and not stat.S_ISREG(st.st_mode):
                refuse(shown, st.st_mode)
            raise InputError(f"{shown} cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)
    mode = os.fstat(f).st_mode
    if not stat.S_ISREG(mode):
        os.close(f)
        refuse(shown, mode)
    return os.fdopen(f, "rb")


def read_bytes(root: Path, rel: str) -> bytes:
    """The content of the regular file ``rel`` of ``root`` (see :func:`open_file`)."""
    with open_file(root, rel) as f:
        return f.read()


def read_text(root: Path, rel: str) -> str:
    """:func:`read_bytes` as UTF-8 text.

    :raises InputError: naming the path, for bytes that are not UTF-8."""
    try:
        return read_bytes(root, rel).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{Path(root) / rel} is not UTF-8 text (byte {e.start})") from None


def exists(root: Path, rel: str) -> bool:
    """Whether ``rel`` exists in ``root`` (as anything: a link or FIFO there is refused when it
    is read, never taken for "no such file")."""
    return os.path.lexists(Path(root) / rel)


def _part_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" matches zero or more folders
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body + "]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern
    exclude: bool


def parse_dockerignore(text: str) -> list[Rule]:
    """The rules of a ``.dockerignore`` text, in order."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        if not exclude:
            line = line[1:].strip()
        line = os.path.normpath(line.lstrip("/")) if line.lstrip("/") else "."
        if line == ".":
            continue
        rules.append(Rule(re.compile(_part_regex(line) + r"\Z"), exclude))
    return rules


def ignored(rules: list[Rule], rel: str) -> bool:
    """Whether the path ``rel`` (relative, '/'-separated) is left out of the context."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = False
    for rule in rules:
        if any(rule.regex.match(p) for p in prefixes):
            out = rule.exclude
    return out


def context_files(root: Path, rules: list[Rule] | None = None) -> list[str]:
    """Relative paths of the files under ``root`` that the context holds, sorted.

    :raises InputError: naming the path of a link, FIFO, socket or device among them or among
        the files tinsnip reads (:data:`READ`); what ``.dockerignore`` leaves out is not looked at.
    """
    root = Path(root)
    for name in READ:
        st = _lstat(root / name)
        if st is not None and not stat.S_ISREG(st.st_mode):
            refuse(root / name, st.st_mode)
    if rules is None:
        rules = parse_dockerignore(read_text(root, ".dockerignore")
                                   if exists(root, ".dockerignore") else "")
    takes_back = any(not r.exclude for r in rules)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # never into a linked folder
        base = Path(dirpath)
        keep = []
        for name in sorted(dirnames) + sorted(filenames):
            rel = (base / name).relative_to(root).as_posix()
            if rel in NEVER:
                continue
            wanted = rel in ALWAYS or not ignored(rules, rel)
            mode = os.lstat(base / name).st_mode
            if stat.S_ISDIR(mode):
                if wanted or takes_back:  # an ignored folder may hold a file taken back
                    keep.append(name)
                continue
            if not wanted:
                continue
            if not stat.S_ISREG(mode):
                refuse(base / name, mode)
            out.append(rel)
        dirnames[:] = [d for d in dirnames if d in keep]
    return sorted(out)


def digest(root: Path, files: list[str]) -> str:
    """sha256 over each file's path, executable bit and content."""
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0")
        with open_file(root, rel) as f:
            h.update(b"X" if os.fstat(f.fileno()).st_mode & stat.S_IXUSR else b"F")
            h.update(hashlib.sha256(f.read()).digest())
        h.update(b"\0")
    return h.hexdigest()


def tarball(root: Path, files: list[str]) -> bytes:
    """A gzip tar of ``files`` (owner root, modes kept, folders made as needed), each read
    through :func:`open_file`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for rel in files:
            with open_file(root, rel) as f:
                info = tar.gettarinfo(arcname=rel, fileobj=f)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                tar.addfile(info, f)
    return buf.getvalue()
