"""The execution model: resources read facts, compare, and yield commands; a host runs them.

A :class:`Resource` is pure: ``fact_command()`` is one shell snippet that prints the current
state, ``parse()`` turns its output into data, and ``commands(fact)`` returns what must run to
reach the wanted state (an empty list means nothing to do). :meth:`Host.converge` reads the facts
of every resource of a step in ONE command, then runs every needed command in ONE more command,
so a step that changes nothing costs one SSH round trip.
"""
from __future__ import annotations

import base64
import io
import secrets
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from invoke.exceptions import CommandTimedOut

from ..errors import RemoteError

q = shlex.quote
MARK = "@@tinsnip-fact:"
RETRY_EXIT = 75  # a command's way of saying "the state moved under me: read the facts again"
DEFAULT_TIMEOUT = 300.0  # seconds a remote command may take (Invoke's timeouts.command, `inv -T`)


@dataclass(frozen=True)
class Cmd:
    """A shell command, and what a person is shown for it (never a secret).

    ``data``, when given, is uploaded to a private temporary file on the host before the
    step's script runs and becomes the command's standard input (large contents such as a
    build context never travel in a command line)."""

    text: str
    show: str = ""
    data: bytes | None = None

    def __str__(self):
        return self.show or self.text


def sh(*words) -> str:
    """Join words into one shell command line, quoting each one."""
    return " ".join(q(str(w)) for w in words)


class Resource:
    """Something on a host that should be in a given state."""

    def describe(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def fact_command(self) -> str:
        raise NotImplementedError

    def parse(self, out: str) -> Any:
        return out

    def commands(self, fact: Any) -> list[Cmd]:
        raise NotImplementedError

    def plan(self, out: str) -> list[Cmd]:
        return self.commands(self.parse(out))


def facts_script(resources: Sequence[Resource]) -> str:
    """One POSIX shell script printing every resource's fact behind a numbered marker."""
    parts = []
    for i, r in enumerate(resources):
        parts.append(f"echo {MARK}{i}; {{ {r.fact_command()} ; }} 2>/dev/null")
    return "\n".join(parts) + "\ntrue"


def split_facts(out: str, count: int) -> list[str]:
    """Split the output of :func:`facts_script` back into one string per resource."""
    chunks: dict[int, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith(MARK):
            current = int(line[len(MARK):])
            chunks[current] = []
        elif current is not None:
            chunks[current].append(line)
    missing = [i for i in range(count) if i not in chunks]
    if missing:
        raise ValueError(f"facts output lacks entries {missing}")
    return ["\n".join(chunks[i]) for i in range(count)]


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def summarize(resources: Sequence[Resource], limit: int = 3) -> str:
    """What a step checked, in a line: each resource when few, else the first ones and a count."""
    names = [r.describe() for r in resources]
    if len(names) <= limit:
        return "; ".join(names)
    return "; ".join(names[:limit - 1]) + f"; and {len(names) - limit + 1} more, all as wanted"


def remote_script(command: str) -> str:
    """``command`` as the remote shell reads it from its standard input (``sh -s``).

    The script, file contents included, travels over the SSH channel's stdin, never in a
    command line (which any local user reads in /proc/PID/cmdline and sudo logs). It runs in
    the C locale, so tools print what the parsers expect. The body is one brace group: the shell
    reads all of it before running any of it (a script cut off in transit runs nothing), and
    the commands inside read /dev/null, so none of them can swallow the rest of the script.
    """
    return f"LC_ALL=C; export LC_ALL\n{{\n{command}\n}} </dev/null\n"


class ScriptStream(io.StringIO):
    """A script as Invoke's ``in_stream``: handed over whole at the first read (Invoke asks a
    stream that is not a terminal for one character per turn of its stdin loop), then EOF,
    on which Invoke closes the channel's stdin."""

    def read(self, size: int | None = -1) -> str:
        return super().read()


@dataclass
class Host:
    """A named host reached through an Invoke/Fabric context, with counters for the report.

    ``conn`` is anything with ``run(command, **kw)`` (a Fabric Connection in use). With
    ``dry=True`` facts are still read (reading changes nothing) but no command that changes
    anything runs; with ``conn=None`` (host not reachable in a dry run) the plan lists steps only.
    """

    name: str
    conn: Any
    dry: bool = False
    out: Callable[[str], None] = print
    sudo: bool = False
    timeout: float = DEFAULT_TIMEOUT
    commands: int = 0
    counts: dict = field(default_factory=lambda: {"ok": 0, "changed": 0, "failed": 0,
                                                  "unchecked": 0})
    seconds: float = 0.0  # time spent waiting on this host's commands

    # -- running ---------------------------------------------------------------------------
    def run(self, command: str, *, step: str, show: str = ""):
        """Run one script as root (through ``sudo -n`` when the login user is not root).

        The script goes over stdin (see :func:`remote_script`); a script that takes longer
        than ``timeout`` seconds fails the step.
        """
        text = "sudo -n sh -s" if self.sudo else "sh -s"
        self.commands += 1
        started = time.monotonic()
        try:
            result = self.conn.run(text, hide=True, warn=True, timeout=self.timeout,
                                   in_stream=ScriptStream(remote_script(command)))
        except CommandTimedOut as e:
            raise RemoteError(self.name, step, show or command, "timeout",
                              f"no answer within {self.timeout:g} s (set timeouts.command "
                              f"or `inv -T SECONDS`)") from e
        finally:
            self.seconds += time.monotonic() - started
        if not result.ok:
            raise RemoteError(self.name, step, show or command, result.exited, result.stderr)
        return result

    def upload(self, data: bytes) -> str:
        """Put ``data`` in a new file only the login user can read; return its path."""
        path = f"/tmp/.tinsnip-upload-{secrets.token_hex(12)}"
        self.commands += 1
        started = time.monotonic()
        try:
            with self.conn.sftp().open(path, "wbx") as f:  # x: never an existing file or link
                f.chmod(0o600)
                f.set_pipelined(True)
                f.write(data)
        finally:
            self.seconds += time.monotonic() - started
        return path

    def read(self, resources: Sequence[Resource], *, step: str) -> list[str]:
        out = self.run(facts_script(resources), step=step, show="read facts").stdout
        return split_facts(out, len(resources))

    def converge(self, step: str, resources: Sequence[Resource], *, tries: int = 5) -> bool:
        """Bring ``resources`` to their wanted state; report and return whether anything changed.

        A resource that finds its file edited by someone else between the fact and the write
        exits with :data:`RETRY_EXIT`; the step then reads its facts again (``tries`` times).
        """
        for attempt in range(tries):
            try:
                return self._converge_once(step, resources)
            except RemoteError as e:
                if e.exit_code != RETRY_EXIT or attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def _converge_once(self, step: str, resources: Sequence[Resource]) -> bool:
        if self.conn is None:
            self.note(step, "unknown", "host not reachable; would check: "
                      + "; ".join(r.describe() for r in resources))
            return False
        outs = self.read(resources, step=step)
        todo: list[tuple[Resource, list[Cmd]]] = []
        for r, out in zip(resources, outs):
            cmds = r.plan(out)
            if cmds:
                todo.append((r, cmds))
        return self.apply(step, todo, noop_reason=summarize(resources))

    def apply(self, step: str, todo, *, noop_reason: str = "") -> bool:
        """Run the commands in ``todo`` ([(resource, [Cmd])]) as one script, or report ok."""
        if not todo:
            self.note(step, "ok", noop_reason)
            return False
        detail = "; ".join(r.describe() for r, _ in todo)
        if self.dry:
            self.note(step, "would change", detail)
            for _, cmds in todo:
                for c in cmds:
                    self.out(f"    would run: {c}")
            return True
        cmds = [c for _, cs in todo for c in cs]
        uploads = [self.upload(c.data) if c.data is not None else None for c in cmds]
        lines = [c.text if path is None else f"{c.text} < {q(path)}"
                 for c, path in zip(cmds, uploads)]
        cleanup = [f"trap {q('rm -f ' + sh(*[p for p in uploads if p]))} EXIT"] \
            if any(uploads) else []
        script = "\n".join(["set -e", *cleanup, *lines])
        self.run(script, step=step, show=" && ".join(str(c) for c in cmds))
        self.note(step, "changed", detail)
        return True

    # -- reporting -------------------------------------------------------------------------
    def note(self, step: str, status: str, detail: str = ""):
        key = {"would change": "changed", "unknown": "unchecked"}.get(status, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.out(f"{self.name:<10} {step:<20} {status:<12} {detail}".rstrip())

    def fail(self, step: str, error: Exception):
        self.note(step, "failed", str(error).splitlines()[0])

    def summary(self) -> str:
        c = self.counts
        line = (f"{self.name}: ok={c['ok']} changed={c['changed']} failed={c['failed']} "
                f"commands={self.commands} seconds={self.seconds:.2f}")
        line += f" unchecked={c['unchecked']}" if c["unchecked"] else ""
        return line + (f" warnings={c['warning']}" if c.get("warning") else "")
