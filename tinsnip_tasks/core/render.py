"""Render templates locally with Jinja2: a missing variable is an error naming it.

Every template renders in Jinja2's immutable sandbox: a template reaches only the values it is
given and their public attributes, so a service folder's template cannot run code on the
operator's machine (``{{ cycler.__init__.__globals__.os.system(...) }}`` is refused, naming the
template and the line), change what it was given, or build a huge value with ``*`` or ``**``.
A service folder's templates (and what they include) are read through
:func:`tinsnip_tasks.core.context.open_file`: no link is followed and no FIFO waited on.

Jinja2 is imported on first render, so listing tasks does not pay for it.
"""
from __future__ import annotations

import functools
from pathlib import Path

from ..errors import TemplateError

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
#: The largest string, list or number a template may make with ``*`` or ``**``.
MAX_SIZE = 1_000_000


@functools.cache
def _sandbox():
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError(f"the power {right} is too large for a template")
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) \
                            and len(seq) * n > MAX_SIZE:
                        raise SecurityError("the value would be too large for a template")
            return super().call_binop(context, operator, left, right)

    return Sandbox


def _folder_loader(root: Path):
    import jinja2

    from .context import open_file

    class FolderLoader(jinja2.BaseLoader):
        """Templates of one folder, opened without following links (``..`` is not allowed)."""

        def get_source(self, environment, template):
            if template.startswith("/") or ".." in template.split("/"):
                raise jinja2.TemplateNotFound(template)
            try:
                with open_file(root, template) as f:
                    data = f.read()
            except FileNotFoundError:
                raise jinja2.TemplateNotFound(template) from None
            try:
                return data.decode("utf-8"), None, lambda: False
            except UnicodeDecodeError as e:
                raise TemplateError(f"template {template!r} of {root} is not UTF-8 text "
                                    f"(byte {e.start})") from None

    return FolderLoader()


def _compiled_once():
    """A cache of compiled templates in memory, by source: a service folder's template is read
    again at every render (never trusted from an earlier read) but compiled once per run."""
    import jinja2

    class Compiled(jinja2.BytecodeCache):
        def __init__(self):
            self.code: dict[str, bytes] = {}

        def load_bytecode(self, bucket):
            if bucket.key in self.code:
                bucket.bytecode_from_string(self.code[bucket.key])  # dropped if the source changed

        def dump_bytecode(self, bucket):
            self.code[bucket.key] = bucket.bytecode_to_string()

    return Compiled()


@functools.cache
def _env(root: Path, folder: bool, autoescape: bool):
    """The environment of one template folder, made once: its templates compile once."""
    import jinja2

    return _sandbox()(
        loader=_folder_loader(root) if folder else jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescape,
        bytecode_cache=_compiled_once() if folder else None,
    )


def render(name: str, context: dict, *, root: Path | None = None, folder: bool = False,
           autoescape: bool = False) -> str:
    """Render template ``name`` (relative to the template folder) with ``context``; with
    ``autoescape`` every value is HTML-escaped (an HTML page).

    :param folder: ``root`` is a service's own folder (not tinsnip's): read it without following
        links (:func:`tinsnip_tasks.core.context.open_file`).
    :raises TemplateError: the template is missing, malformed, uses a variable that
        ``context`` does not give, or does what the sandbox refuses; the message names the
        template (and the variable or the line).
    :raises InputError: a template of a service folder is a link, FIFO, socket or device.
    """
    import jinja2
    from jinja2.sandbox import SecurityError

    from ..errors import TinsnipError

    root = root or TEMPLATE_DIR
    try:
        return _env(root, folder, autoescape).get_template(name).render(**context)
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"template {name!r} not found under {root}") from e
    except jinja2.UndefinedError as e:
        raise TemplateError(f"template {name!r}: {e.message} (give it in the context)") from e
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template {e.name or name!r} line {e.lineno}: {e.message}") from e
    except SecurityError as e:
        raise TemplateError(f"template {name!r} of {root}{_line(e, name)}: refused by the "
                            f"sandbox: {e} (a template may only use the values it is given: "
                            "smep, ports, image, secrets)") from None
    except TinsnipError:
        raise
    except Exception as e:  # a template's own mistake: 1 + "a", a division by zero, a recursion
        raise TemplateError(f"template {name!r} of {root}{_line(e, name)}: "
                            f"{type(e).__name__}: {e}") from None


def _line(error: Exception, name: str) -> str:
    """`` line N`` of the template where ``error`` was raised, when the traceback says."""
    tb, line = error.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename.endswith(name) or code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""


def catalog(root: Path | None = None) -> set[str]:
    """The names of the catalog services shipped under ``templates/services/``."""
    base = (root or TEMPLATE_DIR) / "services"
    return {p.name for p in base.iterdir() if (p / "docker-compose.yml.j2").is_file()}
