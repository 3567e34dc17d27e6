"""The command-line conventions every program that runs tinsnip's tasks shares (``tinsnip``,
``inv``, ``fab``): ``TASK --help`` prints the task's help, and the program's own name is known so
that a hint names the command a person types next.

Invoke reads a positional argument before it looks for flags, so ``inv machine.setup --help``
would take ``--help`` as the machine's name (and ``service.deploy --help`` would then miss its
service). :func:`with_task_help` gives every task of a collection arguments that recognise
``--help``/``-h`` there; the task then prints its help instead of running.
"""
from __future__ import annotations

import inspect

from invoke import Collection, Task
from invoke.parser import Argument, ParserContext

HELP_WORDS = ("--help", "-h")


def program_name(c) -> str:
    """The program running the task, as a person types it: ``tinsnip``, ``fab`` or ``inv``
    (told by the kind of configuration each program builds)."""
    from .config import TinsnipConfig

    config = getattr(c, "config", c)
    if isinstance(config, TinsnipConfig):
        return "tinsnip"
    if type(config).__module__.split(".")[0] == "fabric":
        return "fab"
    return "inv"


class _Positional(Argument):
    """A positional argument that, given ``--help``, fills its missing siblings too, so the
    parser asks for nothing more and the task prints its help."""

    siblings: list = []

    def set_value(self, value, cast=True):
        super().set_value(value, cast)
        if value in HELP_WORDS:
            for other in self.siblings:
                if other is not self and other.value is None:
                    Argument.set_value(other, value, cast=False)


class HelpfulTask(Task):
    """An Invoke task whose positional arguments accept ``--help`` (see the module)."""

    full_name = ""
    _arguments: list = []

    def get_arguments(self, ignore_unknown_help=None):
        args = super().get_arguments(ignore_unknown_help=ignore_unknown_help)
        positional = [a for a in args if a.positional]
        for a in positional:
            a.__class__ = _Positional
            a.siblings = positional
        self._arguments = args
        return args

    def __call__(self, *args, **kwargs):
        given = list(args[1:]) + [kwargs.get(n) for n in self.positional]
        if any(v in HELP_WORDS for v in given if isinstance(v, str)):
            print(task_help(self, program_name(args[0]) if args else "tinsnip"))
            return None
        return super().__call__(*args, **kwargs)


def task_help(t: HelpfulTask, binary: str) -> str:
    """The help Invoke prints for ``--help TASK``, for ``t``."""
    args = t._arguments or t.get_arguments(ignore_unknown_help=True)
    ctx = ParserContext(name=t.full_name or t.name, args=[
        Argument(names=a.names, kind=a.kind, default=a.default, help=a.help,
                 positional=a.positional, attr_name=a.attr_name) for a in args])
    tuples = ctx.help_tuples()
    lines = [f"Usage: {binary} [--core-opts] {ctx.name} {'[--options] ' if tuples else ''}"
             "[other tasks here ...]", "", "Docstring:"]
    doc = inspect.getdoc(t) or "none"
    lines += [("  " + line) if line.strip() else "" for line in doc.splitlines()] + ["", "Options:"]
    width = max((len(name) for name, _ in tuples), default=0)
    lines += [f"  {name:<{width}}   {text or ''}" for name, text in tuples] or ["  none"]
    return "\n".join(lines) + "\n"


def with_task_help(ns: Collection, prefix: str = "") -> Collection:
    """Make every task of ``ns`` (and its sub-collections) a :class:`HelpfulTask`."""
    for name, t in ns.tasks.items():
        if type(t) is Task:
            t.__class__ = HelpfulTask
        if isinstance(t, HelpfulTask):
            t.full_name = f"{prefix}{name}"
    for name, sub in ns.collections.items():
        with_task_help(sub, f"{prefix}{name}.")
    return ns
