"""Where a run's lines go: step lines and recaps on stdout, errors and notes on stderr.

With ``json=True`` stdout carries only the JSON recap and the step lines go to stderr, so
``tinsnip ... --json | jq`` reads a document. Colour marks changed and failed lines when the
stream is a terminal and ``NO_COLOR`` is not set. ``verbose`` adds the commands run and their
output (what a person is shown for a command, never a secret).

Every line goes through the run's :class:`~tinsnip_tasks.results.Masker` (``mask``), which the run
gives every value of the secrets file it uses: a secret value is ``***`` on stdout, on stderr, in
the JSON recap and in the recap file (:func:`write_atomic`), whoever printed it (a diff, compose,
a YAML error, a container's log).
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from .results import GroupResult, Masker, StepResult, recap_line, step_line

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
        self.mask = Masker()
        self._lock = threading.Lock()

    def _write(self, stream, text: str):
        with self._lock:
            print(self.mask.text(text), file=stream, flush=True)

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

    def progress(self, host: str, step: str, text: str):
        """A line of a step still running (its output, or how long it has run)."""
        self._write(self.lines, f"{host:<10} {step:<20} {text}")

    @property
    def live(self) -> bool:
        """Whether step lines reach a terminal (a running step's output is then streamed)."""
        isatty = getattr(self.lines, "isatty", None)
        return bool(isatty and isatty())

    def recap(self, group: GroupResult):
        if self.json:
            with self._lock:  # masked as data, before JSON escapes anything
                print(group.to_json(self.mask), file=self.out, flush=True)
            return
        colour = use_colour(self.out)
        for r in group.values():
            status = "unreachable" if r.unreachable else "failed" if not r.succeeded else \
                "changed" if r.changed else "ok"
            self._write(self.out, paint(recap_line(r), status, colour))


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """``path`` (a file on the operator's machine) holds ``data`` with mode ``mode``, or is left
    as it was: a new file beside it (made by ``mkstemp``: created exclusively, following no
    link), flushed, then renamed over it, so a link planted at ``path`` is replaced, never
    written through."""
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


#: A step running longer than this many seconds shows progress ...
PROGRESS_AFTER = 2.0
#: ... and, when its output is not streamed to a terminal, a line this often.
PROGRESS_EVERY = 10.0


class Progress:
    """Progress of one command on a host while it runs: nothing for the first
    :data:`PROGRESS_AFTER` seconds; then, on a terminal, its output streamed line by line under
    the step's name (the lines so far first), else a line every :data:`PROGRESS_EVERY` seconds
    saying how long it has run. ``stream=False`` (a fact read: tinsnip's own protocol) shows the
    time only. Lines starting with ``hidden`` prefixes (tinsnip's markers) are never shown.

    ``out`` and ``err`` are file-like objects for Invoke's ``out_stream``/``err_stream``;
    :meth:`stop` ends it."""

    def __init__(self, output: Output, host: str, step: str, *, stream: bool = True,
                 hidden: tuple = (), after: float = PROGRESS_AFTER, every: float = PROGRESS_EVERY):
        self.output, self.host, self.step = output, host, step
        self.stream = stream and output.live
        self.hidden, self.after, self.every = hidden, after, every
        self.started = time.monotonic()
        self.streaming = False
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.out, self.err = _LineWriter(self._line), _LineWriter(self._line)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _line(self, line: str):
        if line.startswith(self.hidden) or not line.strip():
            return
        with self._lock:
            if not self.streaming:
                self._lines.append(line)
                return
        self.output.progress(self.host, self.step, f"| {line}")

    def _watch(self):
        if self._done.wait(self.after):
            return
        if self.stream:
            with self._lock:
                self.streaming, lines, self._lines = True, self._lines, []
            for line in lines:
                self.output.progress(self.host, self.step, f"| {line}")
            return
        while True:
            seconds = time.monotonic() - self.started
            self.output.progress(self.host, self.step, f"still running ({seconds:.0f} s)")
            if self._done.wait(self.every):
                return

    def stop(self):
        self._done.set()
        self._thread.join(1)


class _LineWriter:
    """A write()-able stream handing whole lines to ``emit``."""

    def __init__(self, emit):
        self.emit, self._part = emit, ""

    def write(self, text: str) -> int:
        self._part += text
        *lines, self._part = self._part.replace("\r", "\n").split("\n")
        for line in lines:
            self.emit(line)
        return len(text)

    def flush(self):
        pass
