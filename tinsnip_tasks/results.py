"""Results as data: what each step on each host did, and the recap made from it.

A :class:`HostResult` lists a host's :class:`StepResult` objects; a :class:`GroupResult` maps
host names to them (as Fabric's ``GroupResult`` maps connections to results). The text recap,
the JSON recap and the tests all read these objects; nothing parses the printed lines.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

#: What a step can report. ``would change`` is ``changed`` in a dry run.
STATUSES = ("ok", "changed", "would change", "failed", "skipped", "unchecked", "warning")

#: Exit codes, documented in the README.
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


#: What a secret value is replaced with in every output.
MASK = "***"


class Masker:
    """Hides every secret value of a run wherever it appears: in text (step lines, diffs, -v
    traces, errors, compose's and YAML's messages) and in data (the JSON recap, before it is
    serialised, so JSON's escaping cannot hide a value from the mask). A value is also hidden
    as Python's ``repr`` and JSON write it inside quotes (``\\t``, ``\\u00e9``)."""

    def __init__(self, values=()):
        self._values: set[str] = set()
        self._re = None
        self.add(values)

    def add(self, values) -> None:
        """Hide ``values`` from now on (empty values hide nothing)."""
        forms = set()
        for v in values:
            if isinstance(v, str) and v:
                self._values.add(v)
        for v in self._values:
            forms.update({v, repr(v)[1:-1], json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]})
        forms.discard("")
        self._re = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) \
            if forms else None

    def __bool__(self):
        return self._re is not None

    def text(self, text: str) -> str:
        """``text`` with every secret value replaced by :data:`MASK`."""
        if self._re is None or not isinstance(text, str):
            return text
        return self._re.sub(MASK, text)

    def data(self, obj):
        """A copy of ``obj`` (dicts, lists, strings, numbers) with every string value masked
        (keys are the recap's field names and host names, kept as they are)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.data(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.data(v) for v in obj]
        return obj


@dataclass
class StepResult:
    """One step on one host: its status, for which machine-environment, and why."""

    step: str
    status: str
    label: str = ""
    detail: str = ""
    commands: list[str] = field(default_factory=list)
    diff: str = ""
    #: facts the step read, as data (what the site report shows; never a secret)
    data: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown step status {self.status!r}")


@dataclass
class HostResult:
    """Everything a run did on one host."""

    host: str
    steps: list[StepResult] = field(default_factory=list)
    commands: int = 0
    seconds: float = 0.0
    unreachable: str = ""  # why the host could not be reached; empty when it was
    error: str = ""  # the first failure, naming host and step
    rolled_back: int = 0  # services brought back to their previous generation

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.steps if s.status in statuses)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def changed(self) -> int:
        return self.count("changed", "would change")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def succeeded(self) -> bool:
        return not self.failed and not self.unreachable and not self.error

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(ok=self.ok, changed=self.changed, failed=self.failed,
                 skipped=self.count("skipped"), unchecked=self.count("unchecked"),
                 warnings=self.count("warning"),
                 reachable=not self.unreachable)
        return d


class GroupResult(dict):
    """``{host name: HostResult}`` of one run, in the order the hosts were first used."""

    def __init__(self, *, dry: bool = False, title: str = ""):
        super().__init__()
        self.dry, self.title = dry, title
        self.interrupted = False
        self.input_error = ""
        self.unchecked: list[str] = []  # hosts a dry run could not reach, so could not check

    @property
    def failed(self) -> dict[str, HostResult]:
        return {h: r for h, r in self.items() if r.failed or (r.error and not r.unreachable)}

    @property
    def unreachable(self) -> dict[str, HostResult]:
        return {h: r for h, r in self.items() if r.unreachable}

    @property
    def rolled_back(self) -> int:
        """Services brought back to their previous generation, on every host."""
        return sum(r.rolled_back for r in self.values())

    def exit_code(self) -> int:
        """Interrupt, bad input, a failed step, an unreachable host (also one a dry run could
        not check), else 0, in that order."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.input_error:
            return EXIT_INPUT
        if self.failed:
            return EXIT_FAILED
        if self.unreachable or self.unchecked:
            return EXIT_UNREACHABLE
        return EXIT_OK

    def to_dict(self) -> dict:
        return {"title": self.title, "dry": self.dry, "exit_code": self.exit_code(),
                "interrupted": self.interrupted, "input_error": self.input_error,
                "unchecked_hosts": list(self.unchecked),
                "rolled_back": self.rolled_back,
                "hosts": {h: r.to_dict() for h, r in self.items()}}

    def to_json(self, mask: Masker | None = None) -> str:
        """The JSON recap, every secret value of ``mask`` hidden."""
        data = self.to_dict()
        return json.dumps(mask.data(data) if mask is not None else data, indent=2)


def recap_line(r: HostResult) -> str:
    """``HOST: ok=N changed=N failed=N commands=N seconds=S`` plus what else happened
    (skipped, unchecked, warnings, rolled_back, unreachable: each only when not zero)."""
    line = (f"{r.host}: ok={r.ok} changed={r.changed} failed={r.failed} "
            f"commands={r.commands} seconds={r.seconds:.2f}")
    for status, word in (("skipped", "skipped"), ("unchecked", "unchecked"),
                         ("warning", "warnings")):
        if r.count(status):
            line += f" {word}={r.count(status)}"
    if r.rolled_back:
        line += f" rolled_back={r.rolled_back}"
    if r.unreachable:
        line += " unreachable=1"
    return line


def step_line(host: str, s: StepResult) -> str:
    """One line per step: host, step, status, machine-environment and detail."""
    detail = (f"[{s.label}] " if s.label else "") + s.detail
    return f"{host:<10} {s.step:<20} {s.status:<12} {detail}".rstrip()
