"""tinsnip tasks for `inv`: nas, machine, service, xdg, smep and the built-in lab."""
from tinsnip_tasks.collections import namespace

ns = namespace()
