"""The execution model: resources read facts, compare, and yield commands; a host runs them.

A :class:`Resource` is pure: ``fact_command()`` is one shell snippet that prints the current
state, ``parse()`` turns its output into data, and ``commands(fact)`` returns what must run to
reach the wanted state (an empty list means nothing to do). A :class:`Step` is a named list of
resources for one machine-environment. :meth:`Host.converge` reads the facts of EVERY step it is
given in ONE command, then runs every needed command in ONE more command, so steps that change
nothing cost one SSH round trip per host. A step whose facts depend on an earlier step that
changed (``machine.env`` lives on the mount ``machine.mount`` just made) is read again after
that change is applied: extra round trips only when something changed.

Resources and plans never name their host: :class:`Host` labels every failure with its host
and step and records it in its :class:`~tinsnip_tasks.results.HostResult`.
"""
from __future__ import annotations

import io
import random
import secrets
import shlex
import time
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from typing import Any, Sequence

from invoke.exceptions import CommandTimedOut

from ..errors import FactError, RemoteError, TinsnipError
from ..results import HostResult, StepResult

q = shlex.quote
MARK = "@@tinsnip-fact:"
#: Shell setting ``init`` to the name of PID 1 (``systemd`` or another init), read by the
#: shell itself: no process is started for it.
READ_INIT = "read -r init < /proc/1/comm"
STEP_MARK = "@@tinsnip-step:"
RETRY_EXIT = 75  # a command's way of saying "the state moved under me: read the facts again"
DEFAULT_TIMEOUT = 300.0  # seconds a remote command may take (Invoke's timeouts.command, `inv -T`)
sleep = time.sleep


def backoff(attempt: int, *, base: float = 0.1, cap: float = 3.0) -> float:
    """Seconds to wait after failed try ``attempt`` (0, 1, ...): doubling from ``base`` up to
    ``cap``, with jitter, so runs that collided on a file do not collide again in step."""
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)


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

    def stat_read(self) -> tuple[str, str, str] | None:
        """``(path, how, tail)`` when this resource's fact comes from its path's ``stat`` line:
        such facts of one user are read by one ``stat`` of all their paths, and the files among
        them by one ``sha256sum`` (:func:`facts_script`, :func:`~.resources.stat_facts`, which
        says what ``how`` and ``tail`` are)."""
        return None

    @classmethod
    def joint_fact(cls, resources: Sequence["Resource"]) -> str | None:
        """One script reading the facts of all ``resources`` (of this class, read as one user)
        at once, when the class has one: :func:`facts_script` runs it once for them all and
        gives each the whole output, which its :meth:`parse` reads its own part of."""
        return None

    def fact_as(self) -> tuple[int | None, str]:
        """(the UID the fact is read as, None: root; the script that user runs to read it):
        :func:`facts_script` reads the facts of consecutive resources read as one user in one
        process of that user."""
        return None, self.fact_command()

    def parse(self, out: str) -> Any:
        return out

    def commands(self, fact: Any) -> list[Cmd]:
        raise NotImplementedError

    def plan(self, out: str) -> list[Cmd]:
        return self.commands(self.parse(out))

    def diff(self, out: str) -> str:
        """A unified diff of what :meth:`commands` would change (files only; else empty)."""
        return ""

    def trace(self, out: str) -> str:
        """What ``-v`` shows of this resource's fact output (a file's content is left out)."""
        return out

    @property
    def shared_file(self) -> str | None:
        """A file other resources may edit too: edits of it in one round become one change
        (:meth:`merged`), or, when they cannot, wait for a round of their own."""
        return None

    def merged(self, other: "Resource") -> "Resource | None":
        """One resource making the change of ``self`` then that of ``other`` (of the same
        shared file) at once, its commands run once; None when the two cannot be merged."""
        return None

    def fact_after(self, out: str) -> str:
        """The fact output this resource would read once its commands ran on the state ``out``
        describes (what a merged resource after it plans on)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Step:
    """A named step for one machine-environment (``scope``): resources to converge together.

    ``needs`` names earlier steps of the same scope whose changes this step's facts depend on.
    """

    name: str
    resources: tuple
    scope: str = ""
    label: str = ""
    needs: tuple = ()
    before: Any = None  # before(host): runs just before the step changes anything; may refuse
    # after(host, failure): runs just after the step's commands ran (failure: their RemoteError,
    # or None); may fail the step (a deploy's health gate)
    after: Any = None


#: Holds a facts script's output until it ends (POSIX ``dd`` gathers its input into output
#: blocks of ``obs`` bytes), so the SSH channel carries it in a few large packets, not one
#: small packet per line, each of which costs both ends CPU (about 90 packets for one
#: machine-environment's facts, 15 with this).
GATHER = "dd obs=1048576 2>/dev/null"


def facts_script(resources: Sequence[Resource]) -> str:
    """One POSIX shell script printing every resource's fact behind a numbered marker, its
    output passed on in one piece at its end (:data:`GATHER`). The facts read as one user
    (:meth:`Resource.fact_as`) are read by one process of that user, wherever they are in
    the list: one ``setpriv`` and one shell for them all, not one each, and their ``stat``
    lines, links and files (:meth:`Resource.stat_read`) by one ``stat`` and one ``sha256sum``;
    the facts of a class that reads them together (:meth:`Resource.joint_fact`) by one script;
    a fact two resources read alike is read once, and its output given to both (the facts are
    independent reads; the markers give each its own output back)."""
    from .resources import as_uid, stat_facts  # (that module builds on this one)

    parts, first = [], {}
    facts = sorted(((i, r.stat_read(), *r.fact_as()) for i, r in enumerate(resources)),
                   key=lambda fact: -1 if fact[2] is None else fact[2])
    for uid, group in groupby(facts, key=lambda fact: fact[2]):
        group = list(group)
        stats = [(i, *read) for i, read, _, _ in group
                 if read is not None and not {"\n", "|"} & set(read[0])]
        batched = {i for i, *_ in stats} if len(stats) > 1 else set()
        joint = {}  # index: the script of the class's joint fact, read for all of them
        for _, alike in groupby(sorted((type(resources[i]).__name__, i) for i, *_ in group),
                                key=lambda pair: pair[0]):
            alike = [i for _, i in alike]
            script = (type(resources[alike[0]]).joint_fact([resources[i] for i in alike])
                      if len(alike) > 1 else None)
            joint.update((i, script) for i in alike if script)
        reads = []
        for i, _, _, script in group:
            if i in batched:
                continue
            script = joint.get(i, script)
            j = first.setdefault((uid, script), i)
            reads.append(f"echo {MARK}{i}; {{ {script} ; }} 2>/dev/null" if j == i
                         else f"echo {MARK}{i}={j}")
        reads = "\n".join(reads + ([f"{{ {stat_facts(stats)} ; }} 2>/dev/null"] if batched
                                   else []))
        parts.append(reads if uid is None else f"{{ {as_uid(uid, reads)} ; }} 2>/dev/null")
    return "{\n" + "\n".join(parts) + "\ntrue\n} | " + GATHER


def split_facts(out: str, count: int) -> list[str]:
    """Split the output of :func:`facts_script` back into one string per resource (``N=M``:
    resource N's fact is resource M's)."""
    chunks: dict[int, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith(MARK):
            number, _, same = line[len(MARK):].partition("=")
            current = int(number)
            chunks[current] = []
            if same:
                chunks[current], current = chunks[int(same)], None
        elif current is not None:
            chunks[current].append(line)
    missing = [i for i in range(count) if i not in chunks]
    if missing:
        raise ValueError(f"facts output lacks entries {missing}")
    return ["\n".join(chunks[i]) for i in range(count)]


def summarize(resources: Sequence[Resource], limit: int = 3) -> str:
    """What a step checked, in a line: each resource when few, else the first ones and a count."""
    names = [r.describe() for r in resources]
    if len(names) <= limit:
        return "; ".join(names)
    return "; ".join(names[:limit - 1]) + f"; and {len(names) - limit + 1} more, all as wanted"


def _listed(resources: Sequence[Resource], limit: int = 3) -> str:
    """What a fact read asks about, in a line: the first resources and how many more."""
    names = [r.describe() for r in resources]
    more = f"; and {len(names) - limit} more" if len(names) > limit else ""
    return "; ".join(names[:limit]) + more


def _failed_step(stderr: str, count: int) -> int:
    """Index of the step whose commands were running when a change script stopped."""
    marks = [int(l[len(STEP_MARK):]) for l in (stderr or "").splitlines()
             if l.startswith(STEP_MARK) and l[len(STEP_MARK):].isdigit()]
    return marks[-1] if marks else 0


def _fact_trace(resources: Sequence[Resource], out: str) -> str:
    """What -v shows of a facts script's output: each resource's :meth:`Resource.trace`."""
    try:
        return "\n".join(r.trace(o) for r, o in zip(resources, split_facts(out, len(resources))))
    except ValueError:
        return f"(facts output of {len(out)} characters, not in the expected form)"


def _without_marks(text: str) -> str:
    return "\n".join(l for l in (text or "").splitlines() if not l.startswith(STEP_MARK))
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
    """A named host reached through an Invoke/Fabric context; what it did is in ``result``.

    ``conn`` is anything with ``run(command, **kw)`` (a Fabric Connection in use). With
    ``dry=True`` facts are still read (reading changes nothing) but no command that changes
    anything runs; with ``conn=None`` (host not reachable in a dry run) the plan lists steps only.
    A failure stops this host's later steps (they are reported ``skipped``), never another host.
    """

    name: str
    conn: Any
    dry: bool = False
    output: Any = None  # tinsnip_tasks.output.Output; None prints nothing
    sudo: bool = False
    unreachable: str = ""
    timeout: float = DEFAULT_TIMEOUT
    commands: int = 0
    seconds: float = 0.0  # time spent waiting on this host's commands
    result: HostResult = field(init=False)

    def __post_init__(self):
        self.result = HostResult(self.name, unreachable=self.unreachable)
        self._ahead: dict[str, str] = {}  # facts read ahead: script -> output

    # -- running ---------------------------------------------------------------------------
    def run(self, command: str, *, step: str, show: str = "", facts: bool = False):
        """Run one script as root (through ``sudo -n`` when the login user is not root).

        The script goes over stdin (see :func:`remote_script`); a script that takes longer
        than ``timeout`` seconds fails the step. One that runs longer than 2 s shows progress
        (:class:`~tinsnip_tasks.output.Progress`; its output streamed on a terminal unless
        ``facts``: a fact read, or a command whose output may hold a secret).
        """
        from ..output import Progress

        text = "sudo -n sh -s" if self.sudo else "sh -s"
        self.commands += 1
        started = time.monotonic()
        streams = {"hide": True}
        progress = None
        if self.output is not None and not self.output.json:
            progress = Progress(self.output, self.name, step, stream=not facts,
                                hidden=(MARK, STEP_MARK))
            streams = {"hide": False, "out_stream": progress.out, "err_stream": progress.err}
        try:
            result = self.conn.run(text, warn=True, timeout=self.timeout,
                                   in_stream=ScriptStream(remote_script(command)), **streams)
        except CommandTimedOut as e:
            raise RemoteError(self.name, step, show or command, "timeout",
                              f"no answer within {self.timeout:g} s (set timeouts.command "
                              f"or `inv -T SECONDS`)") from e
        finally:
            self.seconds += time.monotonic() - started
            if progress is not None:
                progress.stop()
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

    def execute(self, command: str, *, step: str, show: str = "", secret: bool = False,
                trace=None, facts: bool = False):
        """:meth:`run`, traced with -v, counted in :attr:`result`. The output of a ``secret``
        command (one that may print a secret, like ``docker compose config``) is never traced;
        ``trace(stdout)``, when given, is what is traced of the output; a ``facts`` read
        without one (tinsnip's own protocol, not a person's) traces none."""
        self._trace(f"$ {show}")
        try:
            # never streamed: the output of a secret command, or tinsnip's fact protocol
            result = self.run(command, step=step, show=show, facts=facts or secret)
        finally:
            self.result.commands, self.result.seconds = self.commands, self.seconds
        if secret:
            self._trace(f"(output of {len(result.stdout)} characters not shown: it may hold secrets)")
        elif trace is not None or not facts:
            shown = trace(result.stdout) if trace else _without_marks(result.stdout)
            self._trace(shown + _without_marks(result.stderr))
        return result

    def _trace(self, text: str):
        if self.output is not None and text.strip():
            self.output.trace(self.name, text)

    def read(self, resources: Sequence[Resource], *, step: str) -> list[str]:
        script = facts_script(resources)
        out = self._ahead.pop(script, None)
        if out is None:
            out = self.execute(script, step=step, facts=True,
                               show=f"read facts: {_listed(resources)}",
                               trace=partial(_fact_trace, resources)).stdout
        return split_facts(out, len(resources))

    def read_ahead(self, resources: Sequence[Resource]) -> None:
        """Read the facts of ``resources`` now; a later :meth:`read` of exactly the same
        resources uses them instead of asking again (once)."""
        script = facts_script(resources)
        self._ahead[script] = self.execute(script, step="facts", facts=True,
                                           show=f"read facts: {_listed(resources)}",
                                           trace=partial(_fact_trace, resources)).stdout

    @property
    def failed(self) -> bool:
        return bool(self.result.error or self.result.unreachable)

    # -- converging ------------------------------------------------------------------------
    def converge(self, steps: Sequence[Step], *, tries: int = 8) -> bool:
        """Bring every step to its wanted state, in order; return whether anything changed.

        Round after round: read the facts of every pending step in one command, plan each step
        in order, and apply the changes of every step that does not wait on another in one more
        command. Edits of one shared file in a round are one change of it, made by the last step
        that edits it (``after`` commands such as ``exportfs -ra`` run once; each step plans its
        own edit on the file as the earlier ones leave it). A
        step waits (to be read again next round) when a step it ``needs`` changed in this round,
        or when it edits a shared file in a way that cannot be merged. A resource
        that finds its file edited by someone else between fact and write exits with
        :data:`RETRY_EXIT`; its step waits (:func:`backoff`) and is read again (``tries``
        times).
        """
        pending, changed, attempts = [s for s in steps if s.resources], False, 0
        while pending:
            if self.failed:
                for s in pending:
                    self.note(s, "skipped", "an earlier step or the connection failed")
                return changed
            if self.conn is None:
                for s in pending:
                    self.note(s, "unchecked", "host not reachable; would check: "
                              + "; ".join(r.describe() for r in s.resources))
                return changed
            name = pending[0].name if len(pending) == 1 else f"{pending[0].name} (facts)"
            try:
                outs = self.read([r for s in pending for r in s.resources], step=name)
            except TinsnipError as e:
                self.fail(pending[0], e)
                pending = pending[1:]
                continue
            now, later, failed = self._plan_round(pending, outs)
            if not self.dry and now:
                applied, retry = self._apply(now)
                changed = changed or applied
                if retry:
                    attempts += 1
                    sleep(backoff(attempts - 1))
                    if attempts >= tries:
                        self.fail(retry[0][0], TinsnipError(
                            f"{retry[0][0].name}: its files kept changing under it "
                            f"({tries} tries); run again"))
                        retry = retry[1:]
                    later = [s for s, _ in retry] + later
            elif now:
                changed = True  # each noted "would change" as it was planned (_plan_round)
            if failed is not None:
                s, e = failed
                self.fail(s, e)
            pending = later
        return changed

    def _plan_round(self, pending: list[Step], outs: list[str]):
        """Split ``pending`` into steps to apply now (with their commands) and steps to read
        again next round; stop at the first step whose plan fails."""
        now, later, waiting = [], [], set()
        writes: dict[str, _Write] = {}  # shared file -> its one change in this round
        i = 0
        for n, s in enumerate(pending):
            step_outs = outs[i:i + len(s.resources)]
            i += len(s.resources)
            before = [need for need in s.needs if (s.scope, need) in waiting]
            if not self.dry and (before or any(
                    r.shared_file in writes and writes[r.shared_file].merged(r) is None
                    for r in s.resources if r.shared_file)):
                waiting.add((s.scope, s.name))
                later.append(s)
                continue
            try:
                todo, merges = [], {}
                for r, out in zip(s.resources, step_outs):
                    w = merges.get(r.shared_file) or writes.get(r.shared_file)
                    merged = w.merged(r) if w is not None else None
                    if merged is not None:  # planned on the file as the earlier edits leave it
                        out = w.resource.fact_after(w.out)
                    cmds = r.plan(out)
                    if not cmds:
                        continue
                    if r.shared_file:
                        place = (s, todo, len(todo), r is s.resources[-1])
                        merges[r.shared_file] = (_Write(r, out, [place]) if merged is None else
                                                 _Write(merged, w.out, w.places + [place]))
                    todo.append((r, cmds, r.diff(out) if (self.dry or self._verbose) else ""))
                if todo and s.before is not None:
                    s.before(self)
            except TinsnipError as e:
                if self.dry and before:
                    # a dry run reads the host as it is: what this step finds wrong may be what
                    # the steps it follows would change first
                    self.note(s, "unchecked", f"checked once {', '.join(before)} has run; "
                                              f"as the host is now: {e}")
                    continue
                return self._merge(now, writes), later + list(pending[n + 1:]), (s, e)
            except (ValueError, LookupError, UnicodeError) as e:  # output the parser cannot read
                return (self._merge(now, writes), later + list(pending[n + 1:]),
                        (s, FactError(r.describe(), e)))
            if not todo:
                self.note(s, "ok", summarize(s.resources))
                continue
            now.append((s, todo))
            writes.update(merges)
            if self.dry:
                self.note(s, "would change", "; ".join(r.describe() for r, _, _ in todo),
                          commands=[str(c) for _, cmds, _ in todo for c in cmds],
                          diff="".join(d for _, _, d in todo))
            waiting.add((s.scope, s.name))
        return self._merge(now, writes), later, None

    def _merge(self, now, writes: dict):
        """``now`` with each shared file edited by several steps written once, by the last of
        them (the earlier edits wait for it; a dry run shows each step's own commands)."""
        if self.dry:
            return now
        for w in writes.values():
            if len(w.places) < 2:
                continue
            carrier, todo, k, _ = w.places[-1]
            todo[k] = (todo[k][0], w.resource.plan(w.out), todo[k][2])
            for _, todo, k, _ in w.places[:-1]:
                shown = f"(written by {carrier.name} {carrier.label})".replace(" )", ")")
                todo[k] = (todo[k][0], [_Carried(":", shown, by=carrier)], todo[k][2])
        return now

    @property
    def _verbose(self) -> bool:
        return bool(self.output is not None and self.output.verbose)

    def _apply(self, now):
        """Run the changes of ``now`` ([(step, todo)]) as one script; return (changed, steps to
        read again because a resource asked for it)."""
        lines = ["set -e"]
        uploads = []
        for k, (s, todo) in enumerate(now):
            lines.append(f"echo {STEP_MARK}{k} >&2")
            for _, cmds, _ in todo:
                for c in cmds:
                    path = self.upload(c.data) if c.data is not None else None
                    uploads += [path] if path else []
                    lines.append(c.text if path is None else f"{c.text} < {q(path)}")
        if uploads:
            lines.insert(1, f"trap {q('rm -f ' + sh(*uploads))} EXIT")
        shown = " && ".join(str(c) for _, todo in now for _, cmds, _ in todo for c in cmds)
        name = now[0][0].name if len(now) == 1 else f"{now[0][0].name} (changes)"
        try:
            self.execute("\n".join(lines), step=name, show=shown)
        except RemoteError as e:
            k = _failed_step(e.stderr, len(now))
            s, todo = now[k]
            # earlier steps whose edit of a shared file was to be written by a step that did not
            # run to its end
            unrun = {id(x) for x, _ in now[k:]}
            carried = [(c, t) for c, t in now[:k] if any(
                isinstance(x, _Carried) and id(x.by) in unrun for _, cmds, _ in t for x in cmds)]
            done = [(c, t) for c, t in now[:k] if (c, t) not in carried]
            for c, t in done:
                self._done(c, t)
            if e.exit_code == RETRY_EXIT:
                return bool(done), carried + now[k:]
            self._done(s, todo, RemoteError(self.name, s.name, " && ".join(
                str(c) for _, cmds, _ in todo for c in cmds), e.exit_code, _without_marks(e.stderr)))
            for c, t in carried:
                by = next(x.by for _, cmds, _ in t for x in cmds if isinstance(x, _Carried))
                if by is s:
                    self.note(c, "failed", f"its edit was to be written by {by.name}, which failed")
                else:
                    self.note(c, "skipped", f"its edit was to be written by {by.name}, after an "
                                            "earlier step failed")
            for c, _ in now[k + 1:]:  # the script stopped before them
                self.note(c, "skipped", "an earlier step failed")
            return bool(done), []
        for s, todo in now:
            self._done(s, todo)
        return True, []

    def _done(self, s: Step, todo, failure: RemoteError | None = None):
        """Note a step whose commands ran (``failure``: how they failed), once its ``after``
        hook has had its say."""
        try:
            if s.after is not None:
                s.after(self, failure)
            if failure is not None:
                raise failure
        except TinsnipError as e:
            self.fail(s, e)
            return
        self._changed(s, todo)

    def _changed(self, s: Step, todo):
        self.note(s, "changed", "; ".join(r.describe() for r, _, _ in todo),
                  commands=[str(c) for _, cmds, _ in todo for c in cmds],
                  diff="".join(d for _, _, d in todo))

    # -- reporting -------------------------------------------------------------------------
    def note(self, step: Step | str, status: str, detail: str = "", *, commands=(), diff="",
             label: str = "", data: dict | None = None):
        """Record (and print) what a step did; ``data``: the facts it read, for the report."""
        name, label = (step.name, step.label) if isinstance(step, Step) else (step, label)
        r = StepResult(name, status, label, detail, list(commands), diff, dict(data or {}))
        self.result.steps.append(r)
        if self.output is not None:
            self.output.step(self.name, r)
        return r

    def fail(self, step: Step | str, error: Exception):
        """Record ``error`` as the failure of ``step`` on this host; later steps are skipped."""
        if isinstance(error, TinsnipError):
            error.host = error.host or self.name
            error.step = error.step or (step.name if isinstance(step, Step) else step)
        text = str(error)
        if not text.startswith(f"{self.name}: "):
            text = f"{self.name}: {text}"
        self.note(step, "failed", text.splitlines()[0])
        if not self.result.error:
            self.result.error = text
            if self.output is not None:
                self.output.error(f"error: {text}")

    def guard(self, step: str):
        """``with host.guard("machine.status"): ...`` records a failure inside as this step's."""
        return _Guard(self, step)


@dataclass
class _Write:
    """The one change of a shared file in a round: the resource doing every edit of it merged
    so far, the fact it is planned on, and where each edit is (step, its todo list, index in
    it, whether the edit is the step's last resource)."""

    resource: Resource
    out: str
    places: list

    def merged(self, r: Resource) -> Resource | None:
        """The change with ``r``'s edit after the others, or None when they cannot be merged:
        the kinds do not merge, or the last edit so far is not its step's last resource (what
        follows it in its step may need it written at once)."""
        return self.resource.merged(r) if self.places[-1][3] else None


@dataclass(frozen=True)
class _Carried(Cmd):
    """In place of an edit of a shared file written by a later step (``by``) of the round."""

    by: Any = None


class _Guard:
    def __init__(self, host: Host, step: str):
        self.host, self.step = host, step

    def __enter__(self):
        return self.host

    def __exit__(self, kind, error, tb):
        if isinstance(error, TinsnipError):
            self.host.fail(self.step, error)
            return True
        return False
