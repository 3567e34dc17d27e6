"""Fixtures for the lab's self-tests: a fresh `lab` of their own (see tinsnip_lab.testing),
without the kernel hosts, whose tests share the end-to-end tests' lab."""

import pytest

from tinsnip_lab.testing import fresh_lab


@pytest.fixture(scope="session")
def lab(request):
    """A fresh lab for the lab tier, taken down and up by its tests."""
    yield from fresh_lab(request, kernel=False)
