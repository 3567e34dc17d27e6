"""Run resources as one step through a Host on this machine, for tests of the real scripts."""
from invoke import Context

from tinsnip_tasks.ops.base import Host, Step


class StepFailed(AssertionError):
    """The step failed on the host; the message is what the run reports."""


def converge(*resources, step="step"):
    """Run resources as one step through a Host on this machine: the real scripts, in the real
    shell. Returns whether anything changed; a failed step raises :class:`StepFailed`."""
    h = Host("local", Context())
    changed = h.converge([Step(step, tuple(resources))])
    if h.result.error:
        raise StepFailed(h.result.error)
    return changed
