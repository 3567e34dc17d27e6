"""Render templates locally with Jinja2: a missing variable is an error naming it.

Jinja2 is imported on first render, so listing tasks does not pay for it.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import TemplateError

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"


def _env(root: Path, autoescape: bool = False):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )


def render(name: str, context: dict, *, root: Path | None = None,
           autoescape: bool = False) -> str:
    """Render template ``name`` (relative to the template folder) with ``context``; with
    ``autoescape`` every value is HTML-escaped (an HTML page).

    :raises TemplateError: the template is missing, malformed, or uses a variable that
        ``context`` does not give; the message names the template and the variable.
    """
    import jinja2

    root = root or TEMPLATE_DIR
    try:
        return _env(root, autoescape).get_template(name).render(**context)
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"template {name!r} not found under {root}") from e
    except jinja2.UndefinedError as e:
        raise TemplateError(f"template {name!r}: {e.message} (give it in the context)") from e
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template {e.name or name!r} line {e.lineno}: {e.message}") from e


def catalog(root: Path | None = None) -> set[str]:
    """The names of the catalog services shipped under ``templates/services/``."""
    base = (root or TEMPLATE_DIR) / "services"
    return {p.name for p in base.iterdir() if (p / "docker-compose.yml.j2").is_file()}
