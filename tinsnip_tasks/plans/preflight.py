"""The preflight before a service starts: ``docker compose config`` on the machine, in exactly the
seed's environment, then pure rules over its JSON.

:func:`script` and :func:`exists_script` are what runs on the host (as the machine user);
:func:`parse` and :func:`evaluate` are pure, so every rule is tested with captured output;
:func:`check` runs them on a host (before ``service.up`` starts anything, and ``service.check``).
Refused (an error names the service, the key and the fix): an interpolation that comes out empty,
a published host port outside the machine-environment's ten, a bind mount from outside the mount
or the user's home, a bind source that must exist (``bind.create_host_path: false``) but does not.
Warned: a service without ``user:``.
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass

from ..core.smep import Smep
from ..errors import PreflightError
from ..ops.base import Host, q
from ..ops.docker import seed_env
from ..ops.resources import as_uid
from . import Target
from .catalog import service_dir
from .machine import home

_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_UNSET = re.compile(r'The \\?"([A-Za-z_][A-Za-z0-9_]*)\\?" variable is not set')


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    service: str
    key: str
    problem: str
    fix: str

    def __str__(self):
        return f"service {self.service}: {self.key}: {self.problem}; fix: {self.fix}"


def body(mount_point: str, service_dir: str) -> str:
    """A bash script: in the seed's environment, the names of non-empty variables, then
    ``docker compose config --format json``, its exit code and its messages."""
    return (seed_env(mount_point, service_dir)
            + ' || exit 1; echo @@set; for v in $(compgen -e); do [ -n "${!v}" ] && echo "$v"; done; '
            "echo @@config; exec 3>&1; "
            "err=$(docker compose config --format json 2>&1 >&3); rc=$?; "
            "echo; echo \"@@rc $rc\"; printf '%s\\n' \"$err\" | sed 's/^/@@stderr /'")


def script(user: str, mount_point: str, service_dir: str) -> str:
    """:func:`body` run as ``user``."""
    return f"sudo -u {q(user)} bash -c {q(body(mount_point, service_dir))}"


def parse(out: str) -> dict:
    facts = {"set": set(), "config": None, "rc": None, "stderr": []}
    section, config = None, []
    for line in out.splitlines():
        if line == "@@set":
            section = "set"
        elif line == "@@config":
            section = "config"
        elif line.startswith("@@rc "):
            facts["rc"] = int(line.split()[1])
            section = None
        elif line.startswith("@@stderr "):
            text = line[len("@@stderr "):].strip()
            if text:
                facts["stderr"].append(text)
        elif section == "set" and line.strip():
            facts["set"].add(line.strip())
        elif section == "config":
            config.append(line)
    text = "\n".join(config).strip()
    if facts["rc"] == 0 and text:
        facts["config"] = json.loads(text)
    return facts


def references(compose_text: str) -> dict[str, bool]:
    """Variables the compose file interpolates: name -> whether an empty value is an error
    (False for ``${X:-default}``, ``${X-default}``, ``${X:+alt}`` and the like)."""
    out: dict[str, bool] = {}
    for line in compose_text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        line = line.replace("$$", "")
        for m in _REF.finditer(line):
            name = m.group(1) or m.group(3)
            strict = not (m.group(2) or "")
            out[name] = out.get(name, False) or strict
    return out


def binds(config: dict) -> list[tuple[str, str, bool]]:
    """(service, source, must exist) for every bind mount in the compose config."""
    out = []
    for name, svc in sorted((config or {}).get("services", {}).items()):
        for vol in svc.get("volumes") or []:
            if vol.get("type") == "bind":
                must = not (vol.get("bind") or {}).get("create_host_path", False)
                out.append((name, posixpath.normpath(vol.get("source", "")), must))
    return out


def exists_script(user: str, paths: list[str]) -> str:
    """As ``user``: print each of ``paths`` that does not exist."""
    checks = "; ".join(f"[ -e {q(p)} ] || echo {q(p)}" for p in paths)
    return f"sudo -u {q(user)} sh -c {q(checks + '; true')}"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def evaluate(service: str, compose_text: str, facts: dict, smep: Smep, home: str,
             missing: set[str] = frozenset()) -> list[Finding]:
    """Every rule over the facts of one service folder; errors first, then warnings."""
    out = []
    unset = {m.group(1) for line in facts["stderr"] for m in [_UNSET.search(line)] if m}
    for name, strict in sorted(references(compose_text).items()):
        if (strict and name not in facts["set"]) or name in unset:
            out.append(Finding(
                "error", service, f"${{{name}}}",
                "is empty in the deploy environment (machine.env + the service's .env), so "
                "compose would put an empty string there",
                f"set it in the service's service.env, for example {name}=${{TIN_PORT_1}} or "
                f"{name}=${{TIN_DATA_DIR}}, or give a default: ${{{name}:-value}}"))
    if facts["rc"] != 0 or facts["config"] is None:
        detail = "; ".join(l for l in facts["stderr"] if "variable is not set" not in l)
        out.append(Finding("error", service, "docker-compose.yml",
                           f"docker compose config failed (exit {facts['rc']}): "
                           f"{detail or 'no message'}",
                           "correct the compose file; `inv service.check` shows the same"))
        return out
    ten = set(smep.ports)
    for name, svc in sorted(facts["config"].get("services", {}).items()):
        for port in svc.get("ports") or []:
            published = str(port.get("published") or "")
            target = port.get("target")
            key = f"services.{name}.ports"
            if not published:
                out.append(Finding(
                    "error", service, key,
                    f"container port {target} is published on a random host port",
                    f"publish it on one of {smep.user}'s ports: \"${{TIN_PORT_N}}:{target}\""))
                continue
            low, _, high = published.partition("-")
            numbers = range(int(low), int(high or low) + 1)
            stray = [n for n in numbers if n not in ten]
            if stray:
                out.append(Finding(
                    "error", service, key,
                    f"host port {published} is outside {smep.user}'s ten "
                    f"({smep.ports[0]}..{smep.ports[-1]})",
                    f"publish \"${{TIN_PORT_N}}:{target}\" (N = 0..9), mapped in service.env "
                    "if the compose file uses its own variable"))
    allowed = (smep.mount_point, home)
    for name, source, must in binds(facts["config"]):
        key = f"services.{name}.volumes"
        if not any(_inside(source, root) for root in allowed):
            out.append(Finding(
                "error", service, key,
                f"bind mount from {source}, outside {smep.mount_point} and {home}",
                "bind from ${TIN_DATA_DIR}, ${TIN_STATE_DIR}, ${TIN_CONFIG_DIR} or the "
                "service folder, or use a named volume"))
        elif must and source in missing:
            out.append(Finding(
                "error", service, key,
                f"bind source {source} does not exist and bind.create_host_path is false",
                f"create {source} (as {smep.user}) before the deploy, or set "
                "create_host_path: true"))
    for name, svc in sorted(facts["config"].get("services", {}).items()):
        if not svc.get("user"):
            out.append(Finding(
                "warning", service, f"services.{name}.user",
                "has no user:, so the container runs as the image's user",
                'add user: "${TIN_SERVICE_UID}:${TIN_SERVICE_UID}"'))
    return out


def bind_paths_to_check(facts: dict, smep: Smep, home: str) -> list[str]:
    """Bind sources that must exist and lie where binds are allowed (checked on the host)."""
    allowed = (smep.mount_point, home)
    return sorted({source for _, source, must in binds(facts["config"] or {})
                   if must and any(_inside(source, r) for r in allowed)})


def check(h: Host, target: Target) -> None:
    """The preflight on the files deployed on ``h``: refuse (PreflightError, nothing started) or
    note ok, with warnings. Run before ``service.up`` starts anything."""
    t = target
    smep, service = t.smep, t.service
    d = service_dir(smep, service)
    if h.conn is None:
        h.note("service.check", "unchecked", "host not reachable; would run docker compose config")
        return
    exists = h.execute(as_uid(smep.uid, f"[ -f {q(d + '/docker-compose.yml')} ] && echo yes || true"),
                       step="service.check", show=f"look for {d}/docker-compose.yml").stdout.strip()
    if exists != "yes":  # a dry run before the first deploy: nothing to check on the host yet
        h.note("service.check", "unchecked", f"{d} not written yet; checked at deploy")
        return
    facts = parse(h.execute(script(smep.user, smep.mount_point, d), step="service.check",
                            show="docker compose config", secret=True).stdout)
    missing = set()
    paths = bind_paths_to_check(facts, smep, home(smep)) if facts["config"] else []
    if paths:
        out = h.execute(exists_script(smep.user, paths), step="service.check",
                        show="look for bind sources").stdout
        missing = {line.strip() for line in out.splitlines() if line.strip()}
    findings = evaluate(service, t.rendered.compose, facts, smep, home(smep), missing)
    errors = [f for f in findings if f.level == "error"]
    for f in findings:
        if f.level == "warning":
            h.note("service.check", "warning", str(f))
    if errors:
        raise PreflightError(h.name, "service.check", errors)
    h.note("service.check", "ok", f"docker compose config of {service}: "
                                  f"{len(facts['config'].get('services', {}))} service(s) pass")
