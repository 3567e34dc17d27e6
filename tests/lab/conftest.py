"""Fixtures for the lab's self-tests: `lab` (see tinsnip_lab.testing)."""

from tinsnip_lab.testing import LabHosts, lab  # noqa: F401
