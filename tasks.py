"""tinsnip tasks for `inv` in a checkout: nas, machine, service, xdg, smep, plus the built-in lab."""
from tinsnip_lab.tasks import with_lab
from tinsnip_tasks.cli import with_task_help
from tinsnip_tasks.collections import namespace

ns = with_task_help(with_lab(namespace()))
