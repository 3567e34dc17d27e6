"""tinsnip tasks for `fab -H HOST task ...`: the same tasks, with the host taken from -H."""
from tinsnip_tasks.collections import namespace

ns = namespace()
