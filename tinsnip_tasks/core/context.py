"""A service folder as a build context: which files go (``.dockerignore``), their digest, a tar.

Pure apart from reading the folder. The rules follow Docker's own ``.dockerignore``: one pattern a
line, ``#`` comments, ``*`` and ``?`` within one path part, ``**`` across parts, a leading ``!``
takes files back, the last matching line wins, and a pattern that matches a folder matches
everything under it. The Dockerfile and ``.dockerignore`` are always sent (Docker sends them too).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

#: Never uploaded: compose's own ``.env`` of the folder (the deploy writes its own), the compose
#: file and its template (the deploy writes docker-compose.yml itself).
NEVER = (".env", "docker-compose.yml", "docker-compose.yml.j2")
ALWAYS = ("Dockerfile", ".dockerignore")


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
    """Relative paths of the files and links under ``root`` that the context holds, sorted."""
    root = Path(root)
    if rules is None:
        ignore = root / ".dockerignore"
        rules = parse_dockerignore(ignore.read_text() if ignore.is_file() else "")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel in NEVER:
                continue
            if rel in ALWAYS or not ignored(rules, rel):
                out.append(rel)
    return sorted(out)


def digest(root: Path, files: list[str]) -> str:
    """sha256 over each file's path, kind, executable bit and content (or link target)."""
    h = hashlib.sha256()
    for rel in files:
        p = Path(root) / rel
        h.update(rel.encode() + b"\0")
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode())
        else:
            h.update(b"X" if os.access(p, os.X_OK) else b"F")
            h.update(hashlib.sha256(p.read_bytes()).digest())
        h.update(b"\0")
    return h.hexdigest()


def tarball(root: Path, files: list[str]) -> bytes:
    """A gzip tar of ``files`` (owner root, modes kept, folders made as needed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for rel in files:
            info = tar.gettarinfo(str(Path(root) / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isfile():
                with open(Path(root) / rel, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()
