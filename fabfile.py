"""tinsnip tasks for `fab -H HOST task ...`: the same tasks, with the host taken from -H.

With ``TINSNIP_LAB=1`` (tests in a checkout) connections go to the lab's hosts only.
"""
from tinsnip_lab import configure
from tinsnip_tasks.collections import namespace

ns = configure(namespace())
