"""The ``tinsnip`` command: Invoke's ``Program`` carrying tinsnip's tasks, as Fabric ships ``fab``.

It works from any folder: the project is the current folder, so ``./tinsnip.yaml`` is the
project config file and ``inventory.yaml`` there is the default inventory. Configuration files
are ``tinsnip.yaml`` (``/etc/``, ``~/.tinsnip.yaml``, ``./``) and environment variables start
with ``TINSNIP_`` (see :mod:`tinsnip_tasks.config`).
"""
import os

from invoke import Program

from . import __version__
from .collections import namespace
from .config import TinsnipConfig


class Tinsnip(Program):
    """Invoke's Program with the project config file taken from the current folder."""

    def parse_collection(self):
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()


program = Tinsnip(name="tinsnip", binary="tinsnip", version=__version__,
                  namespace=namespace(), config_class=TinsnipConfig)
