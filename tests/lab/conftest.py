"""Fixtures for the lab's self-tests: `lab` (see tinsnip_tasks.lab.testing)."""

from tinsnip_tasks.lab.testing import LabHosts, lab  # noqa: F401
