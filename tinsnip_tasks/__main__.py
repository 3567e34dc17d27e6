"""``python -m tinsnip_tasks`` is the ``tinsnip`` command."""
from .main import program

program.run()
