"""``tinsnip init``: a starting point in the current folder.

Without ``--service`` it writes a commented ``inventory.yaml`` and ``tinsnip.yaml`` (the wheel
ships them under ``templates/init/``), valid as written. With ``--service NAME`` it writes a
folder ``NAME/`` holding a Python service built with uv (``templates/python-uv``) that the
inventory can deploy as ``NAME: {path: NAME, ports: {web: 0}}``. Nothing that exists is
overwritten: an existing file refuses the whole run (exit 2) before anything is written.
"""
from __future__ import annotations

import os
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from ..core.render import TEMPLATE_DIR, render
from ..core.smep import NAME_RE
from ..results import EXIT_INPUT

STARTER = ("inventory.yaml", "tinsnip.yaml")
#: The service folder: (template under templates/python-uv, file written), ``{package}`` filled.
SERVICE_FILES = (("Dockerfile.j2", "Dockerfile"), ("docker-compose.yml.j2", "docker-compose.yml"),
                 ("pyproject.toml.j2", "pyproject.toml"), ("service.yaml.j2", "service.yaml"),
                 ("app.py.j2", "{package}/app.py"))
CONTAINER_PORT = 8000


def starter_files() -> dict[str, str]:
    """The starter files' names and texts."""
    return {name: (TEMPLATE_DIR / "init" / name).read_text() for name in STARTER}


def service_files(service: str) -> dict[str, str]:
    """The files of a uv service folder called ``service``, by path inside the folder."""
    package = service.replace("-", "_")
    context = {"service": service, "package": package, "container_port": CONTAINER_PORT}
    files = {dest.format(package=package): render(f"python-uv/{src}", context)
             for src, dest in SERVICE_FILES}
    files[f"{package}/__init__.py"] = f'"""{service}: a service deployed with tinsnip."""\n'
    files["service.env"] = f"# {service}'s settings, sourced after machine.env (see docs/services.md)\n"
    return files


def write_new(folder: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` under ``folder``; refuse (exit 2, naming it) if any of them exists,
    before writing any. Returns the paths written."""
    for name in files:
        if os.path.lexists(folder / name):
            raise Exit(f"error: {folder / name} exists; tinsnip init does not overwrite it "
                       "(move it away or edit it)", code=EXIT_INPUT)
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:  # x: never a file that appeared meanwhile
            f.write(text)
        written.append(str(path))
    return written


@task(help={"service": "write a folder NAME/ holding a Python service built with uv instead"})
def init(c, service=""):
    """Write a commented starter inventory.yaml and tinsnip.yaml into the current folder."""
    here = Path.cwd()
    if service:
        if not NAME_RE.fullmatch(service):
            raise Exit(f"error: --service: {service!r} is not a service name: use 1-32 lowercase "
                       "letters, digits or '-', starting with a letter", code=EXIT_INPUT)
        if os.path.lexists(here / service):
            raise Exit(f"error: {here / service} exists; tinsnip init does not overwrite it",
                       code=EXIT_INPUT)
        for path in write_new(here / service, service_files(service)):
            print(f"wrote {path}")
        print(f"next: cd {service} && uv lock; then in the inventory, under a machine's "
              f"services: {service}: {{path: {service}, ports: {{web: 0}}}}")
        return
    for path in write_new(here, starter_files()):
        print(f"wrote {path}")
    print("next: edit inventory.yaml (host names), then `tinsnip site.up --dry`")
