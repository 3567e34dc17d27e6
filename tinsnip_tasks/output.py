"""Where a run's lines go: step lines and recaps on stdout, errors and notes on stderr.

With ``json=True`` stdout carries only the JSON recap and the step lines go to stderr, so
``tinsnip ... --json | jq`` reads a document. Colour marks changed and failed lines when the
stream is a terminal and ``NO_COLOR`` is not set. ``verbose`` adds the commands run and their
output (what a person is shown for a command, never a secret).
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from .results import GroupResult, StepResult, recap_line, step_line

COLOURS = {"changed": "33", "would change": "33", "failed": "31", "unreachable": "31",
           "skipped": "2"}


def use_colour(stream) -> bool:
    """Colour on a terminal unless NO_COLOR is set (https://no-color.org)."""
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, status: str, colour: bool) -> str:
    code = COLOURS.get(status)
    return f"\033[{code}m{text}\033[0m" if (colour and code) else text


class Output:
    """Thread-safe printer for one run (hosts report from several threads at once)."""

    def __init__(self, *, json: bool = False, verbose: bool = False, out=None, err=None):
        self.json, self.verbose = json, verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()

    def _write(self, stream, text: str):
        with self._lock:
            print(text, file=stream, flush=True)

    @property
    def lines(self):
        """Where step lines go: stdout, or stderr when stdout carries JSON."""
        return self.err if self.json else self.out

    def info(self, text: str):
        self._write(self.lines, text)

    def error(self, text: str):
        self._write(self.err, paint(text, "failed", use_colour(self.err)))

    def note(self, text: str):
        self._write(self.err, text)

    def step(self, host: str, s: StepResult):
        stream = self.lines
        text = step_line(host, s)
        if s.diff and (self.verbose or s.status == "would change"):
            text += "\n" + s.diff.rstrip("\n")
        if s.commands and (self.verbose or s.status == "would change"):
            verb = "would run" if s.status == "would change" else "ran"
            text += "".join(f"\n    {verb}: {c}" for c in s.commands)
        self._write(stream, paint(text, s.status, use_colour(stream)))

    def trace(self, host: str, text: str):
        """A command and its output, with -v only."""
        if self.verbose:
            self._write(self.err, "".join(f"{host}| {line}\n" for line in text.splitlines()).rstrip("\n"))

    def recap(self, group: GroupResult):
        if self.json:
            self._write(self.out, group.to_json())
            return
        colour = use_colour(self.out)
        for r in group.values():
            status = "unreachable" if r.unreachable else "failed" if not r.succeeded else \
                "changed" if r.changed else "ok"
            self._write(self.out, paint(recap_line(r), status, colour))


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """``path`` (a file on the operator's machine) holds ``data`` with mode ``mode``, or is left
    as it was: a new file beside it, flushed, then renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
