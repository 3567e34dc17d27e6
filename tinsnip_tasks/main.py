"""The ``tinsnip`` command: Invoke's ``Program`` carrying tinsnip's tasks, as Fabric ships ``fab``.

It works from any folder: the project is the current folder, so ``./tinsnip.yaml`` is the
project config file and ``inventory.yaml`` there is the default inventory. Configuration files
are ``tinsnip.yaml`` (``/etc/``, ``~/.tinsnip.yaml``, ``./``) and environment variables start
with ``TINSNIP_`` (see :mod:`tinsnip_tasks.config`).

Every input error (a flag or argument the parser refuses, a config file that is not valid YAML
or gives a list where a mapping belongs) ends the program with exit code 2 and one line on
stderr, before any host is touched.
"""
import functools
import gc
import os

import yaml
from invoke import Program
from invoke import config as invoke_config
from invoke.config import AmbiguousMergeError
from invoke.exceptions import Exit, ParseError, UnknownFileType

from . import __version__
from .collections import namespace
from .config import TinsnipConfig
from .results import EXIT_INPUT

LEVELS = ("system", "user", "project", "runtime")


def yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error in one line: the file, line, column and problem."""
    mark = getattr(e, "problem_mark", None)
    where = f"{mark.name}: line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}not valid YAML: {getattr(e, 'problem', None) or e}".replace("\n", " ")


#: The YAML errors of the config files (Invoke reads them with its own copy of PyYAML).
YAML_ERRORS = (yaml.YAMLError, invoke_config.yaml.YAMLError)


def merge_problem(config, defaults: dict) -> str:
    """Which config file gives a value of another kind than ``defaults`` (a list for the
    ``tinsnip`` mapping, say), in one line; empty when none does."""
    for level in LEVELS:
        data = getattr(config, f"_{level}", None) or {}
        path = getattr(config, f"_{level}_path", None) or f"the {level} config"
        if not isinstance(data, dict):
            return (f"{path}: expected a mapping such as tinsnip: {{env: test}}, got "
                    f"{type(data).__name__} {data!r}")
        for key, value in data.items():
            if isinstance(defaults.get(key), dict) and not isinstance(value, dict):
                return (f"{path}: {key}: expected a mapping of settings (such as "
                        f"{key}: {{env: test}}), got {type(value).__name__} {value!r}")
    return ""


def input_errors(fn):
    """Turn the parser's and the config files' errors raised by ``fn`` into ``Exit(code=2)``
    with one line."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except ParseError as e:
            raise Exit(f"error: {e}", code=EXIT_INPUT) from None
        except YAML_ERRORS as e:
            raise Exit(f"error: {yaml_problem(e)}", code=EXIT_INPUT) from None
        except AmbiguousMergeError as e:
            problem = merge_problem(self.config, self.config._defaults) or str(e)
            raise Exit(f"error: {problem}", code=EXIT_INPUT) from None
        except UnknownFileType as e:
            raise Exit(f"error: {e}", code=EXIT_INPUT) from None
        except AttributeError:  # Invoke merging a file that holds no mapping
            problem = merge_problem(self.config, {})
            if problem:
                raise Exit(f"error: {problem}", code=EXIT_INPUT) from None
            raise
    return wrapper


class Tinsnip(Program):
    """Invoke's Program with the project config file taken from the current folder, and input
    errors ending with exit code 2."""

    def run(self, argv=None, exit=True):
        """Run the program; its end costs little: the objects alive then (every imported
        module's) are frozen, so the interpreter's last collections, as it exits, do not walk
        them again (about a tenth of a no-op run's time)."""
        try:
            super().run(argv, exit)
        finally:
            gc.freeze()

    @input_errors
    def create_config(self):
        super().create_config()

    @input_errors
    def parse_core(self, argv):
        super().parse_core(argv)

    @input_errors
    def parse_collection(self):
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()
        self.check_config_kinds()

    @input_errors
    def parse_tasks(self):
        super().parse_tasks()

    @input_errors
    def update_config(self, merge=True):
        super().update_config(merge=merge)
        self.check_config_kinds()

    def check_config_kinds(self):
        """Refuse, before any task runs, a config file whose section is not a mapping (Invoke
        would fail on it when it merges the tasks' defaults)."""
        problem = merge_problem(self.config, self.collection.configuration())
        if problem:
            raise Exit(f"error: {problem}", code=EXIT_INPUT)


program = Tinsnip(name="tinsnip", binary="tinsnip", version=__version__,
                  namespace=namespace(), config_class=TinsnipConfig)
