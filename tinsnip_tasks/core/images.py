"""Image references of a service, read from its compose file and Dockerfiles (pure, no I/O but
reading the service's own folder).

A deploy tracks these references: the ``image`` of each compose service that is pulled, and
the base images (``FROM``) of each service built from its folder. ``service.deploy --pull``
pulls them, and a deploy whose tracked images changed since the last one starts the project
again (rebuilding what is built). A reference written with a variable (``image: ${IMAGE}``,
``FROM $BASE``) is not known before the host interpolates it, so it is not tracked.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import InputError

#: A Docker image reference as tinsnip accepts it: ``[registry[:port]/]path[:tag][@digest]``.
REF_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.I | re.M)


def check_ref(ref: str, where: str) -> str:
    """``ref`` if it is a valid image reference, else an InputError naming ``where``."""
    if not isinstance(ref, str) or len(ref) > 255 or not REF_RE.fullmatch(ref):
        raise InputError(f"{where}: {ref!r} is not an image reference such as busybox:1.36 or "
                         "registry.example:5000/team/app:2")
    return ref


def repository(ref: str) -> str:
    """The repository of ``ref`` as Docker shows it in ``RepoDigests`` (its familiar name:
    ``docker.io/library/busybox:1.36`` -> ``busybox``)."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rindex(":")]
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/"):]
    return name


def digests_of(ref: str, repo_digests) -> list[str]:
    """The digests among ``repo_digests`` (``busybox@sha256:...`` words, as ``RepoDigests``
    lists them) that belong to the repository of ``ref``."""
    repo = repository(ref)
    return [w.split("@", 1)[1] for w in repo_digests if "@" in w and repository(w) == repo]


def pinned(ref: str) -> bool:
    """A reference by digest never moves: nothing newer to look for."""
    return "@sha256:" in ref


def dockerfile_bases(text: str) -> list[str]:
    """The base images of a Dockerfile: each ``FROM`` that names neither an earlier stage, nor
    ``scratch``, nor a variable."""
    stages, out = set(), []
    for ref, alias in _FROM_RE.findall(text):
        if ref.lower() != "scratch" and ref not in stages and "$" not in ref and ref not in out:
            out.append(ref)
        if alias:
            stages.add(alias)
    return out


def _build_file(folder: Path, build) -> Path:
    if isinstance(build, str):
        return folder / build / "Dockerfile"
    context = build.get("context", ".") if isinstance(build, dict) else "."
    return folder / str(context) / str(build.get("dockerfile", "Dockerfile"))


@lru_cache(maxsize=256)
def tracked(compose: str, folder: Path | None, where: str) -> tuple[str, ...]:
    """The image references a deploy of ``compose`` tracks: each pulled service's ``image``, and
    for a service built from ``folder`` the base images of its Dockerfile. Each is checked with
    :func:`check_ref`. Worked out once per compose text in a run: the steps of a deploy and the
    check before it ask for the same one (a YAML parse each)."""
    try:
        data = yaml.safe_load(compose) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{where} is not valid YAML: {e}") from None
    services = data.get("services") if isinstance(data, dict) else None
    out: list[str] = []
    for name, svc in (services or {}).items():
        if not isinstance(svc, dict):
            continue
        if "build" in svc:
            path = _build_file(folder, svc["build"]) if folder is not None else None
            if path is None or not path.is_file():
                continue
            refs = dockerfile_bases(path.read_text(errors="replace"))
            label = f"{path} (FROM)"
        else:
            image = svc.get("image")
            refs = [image] if isinstance(image, str) and "$" not in image else []
            label = f"{where}: services.{name}.image"
        for ref in refs:
            if check_ref(ref, label) not in out:
                out.append(ref)
    return tuple(out)


def registry_digest(answer: str) -> tuple[str, str]:
    """``(digest, "")`` from the daemon's ``GET /distribution/REF/json`` answer, or
    ``("", why)`` when the registry could not be asked."""
    try:
        data = json.loads(answer)
    except ValueError:
        return "", (answer.strip() or "no answer from the daemon")[:200]
    digest = (data.get("Descriptor") or {}).get("digest", "") if isinstance(data, dict) else ""
    if DIGEST_RE.fullmatch(digest or ""):
        return digest, ""
    why = data.get("message", "") if isinstance(data, dict) else ""
    return "", (why or "the registry gave no digest")[:200]
