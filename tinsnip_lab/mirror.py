"""Which Debian mirror the lab's debootstrap uses: the machine's own apt sources.

``TINSNIP_LAB_MIRROR`` wins when set. Otherwise the first ``deb`` source for the lab's suite
with the ``main`` component, in the order apt reads them (``/etc/apt/sources.list``, then the
``*.list`` and deb822 ``*.sources`` files of ``sources.list.d`` by name), else Debian's
redirector. The answer is part of the root filesystem's cache key, so it is normalised (no
trailing slash) and depends only on those files.
"""

import os
from pathlib import Path

ENV_VAR = "TINSNIP_LAB_MIRROR"
DEFAULT = "http://deb.debian.org/debian"
APT_DIR = Path("/etc/apt")
_SCHEMES = ("http://", "https://", "file:/")


def _one_line_entries(text):
    """(types, uris, suites, components) of each line of a ``sources.list`` file."""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        kind, rest = words[0], words[1:]
        if rest and rest[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 2:
            yield [kind], [rest[0]], [rest[1]], rest[2:]


def _deb822_entries(text):
    """(types, uris, suites, components) of each stanza of a deb822 ``.sources`` file."""
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "uris" in fields and "suites" in fields:
            yield (fields.get("types", "").split(), fields["uris"].split(),
                   fields["suites"].split(), fields.get("components", "").split())


def source_files(apt_dir=APT_DIR):
    """The files apt reads its sources from, in apt's order."""
    apt_dir = Path(apt_dir)
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir()
                        if p.is_file() and p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


def from_apt_sources(suite, apt_dir=APT_DIR):
    """The first ``deb`` URI serving ``suite`` with component ``main``, or None."""
    for path in source_files(apt_dir):
        text = path.read_text(errors="replace")
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for types, uris, suites, components in entries:
            if "deb" not in types or suite not in suites or "main" not in components:
                continue
            for uri in uris:
                if uri.startswith(_SCHEMES):
                    return uri.rstrip("/")
    return None


def resolve(suite, environ=os.environ, apt_dir=APT_DIR):
    """The mirror for ``suite``: ``$TINSNIP_LAB_MIRROR``, the apt sources, or Debian's default."""
    given = environ.get(ENV_VAR, "").strip()
    if given:
        return given.rstrip("/")
    return from_apt_sources(suite, apt_dir) or DEFAULT
