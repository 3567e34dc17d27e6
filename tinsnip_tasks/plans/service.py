"""A service on a machine (from the catalog or its own folder): its files and build context on
the mount, its image, its Compose project."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ..core.inventory import Inventory
from ..core import context, envfile
from ..core.render import TEMPLATE_DIR, render
from ..core.smep import Smep
from ..core.smep import validate_name
from ..errors import HealthError, InputError, PreflightError, TemplateError
from ..ops.base import Host, q
from ..core import images as img
from ..ops.docker import ComposeDown, ComposeUp, ContextTree, DockerImage, ImagesPulled
from ..ops.forward import Forward
from ..ops import health
from ..ops.resources import Absent, Directory, File, as_uid
from . import Target, preflight, secrets, step
from .machine import home, machine_env_text, recorded

DATA_FOLDERS = ("data", "state", "config")


@dataclass(frozen=True)
class CatalogEntry:
    """What ``service.yaml`` says (a catalog service, or a service folder's own file)."""

    name: str
    image: str
    image_archive: str | None
    ports: tuple
    secrets: tuple
    folder: Path | None = None  # the service's own folder; None for a catalog service
    wait: int | None = None  # seconds a deploy waits for it to be healthy (``wait:``)


def _entry(name: str, meta_path: Path, folder: Path | None) -> CatalogEntry:
    try:
        if folder is not None:
            text = context.read_text(folder, meta_path.name) \
                if context.exists(folder, meta_path.name) else ""
        else:
            text = meta_path.read_text() if meta_path.is_file() else ""
        meta = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as e:
        raise TemplateError(f"{meta_path} is not valid YAML: {e}") from None
    if not isinstance(meta, dict):
        raise TemplateError(f"{meta_path} must be a mapping (image, image_archive, ports, secrets)")
    if folder is None and "image" not in meta:
        raise TemplateError(f"{meta_path} has no image")
    try:
        wait = health.parse_wait(meta.get("wait"), f"{meta_path}: wait:")
    except InputError as e:
        raise TemplateError(str(e)) from None
    return CatalogEntry(name, meta.get("image", ""), meta.get("image_archive"),
                        tuple(meta.get("ports") or ()), tuple(meta.get("secrets") or ()), folder,
                        wait)


def catalog_entry(name: str, root: Path | None = None) -> CatalogEntry:
    path = (root or TEMPLATE_DIR) / "services" / name / "service.yaml"
    if not path.is_file():
        raise TemplateError(f"catalog service {name!r} has no {path}")
    return _entry(name, path, None)


def service_entry(inv: Inventory, machine: str, service: str) -> CatalogEntry:
    """The service as the inventory gives it: from its own folder, else from the catalog."""
    folder = inv.machine(machine).services[service].path
    if folder is None:
        return catalog_entry(service)
    context.context_files(Path(folder))  # a link, FIFO, socket or device is refused, first
    return _entry(service, Path(folder) / "service.yaml", Path(folder))


def secrets_path(inv: Inventory, machine: str, env: str) -> Path:
    return Path(inv.path).resolve().parent / "secrets" / f"{machine}-{env}.env"


def read_secrets(path: Path, identity: str | None = None) -> dict:
    """The secrets file's values, literally (core/envfile.py): refused when others may read
    or change it; no file means no values. ``path.age`` (age-encrypted, see plans/secrets.py)
    is decrypted in memory with ``identity``."""
    text = secrets.read_text(path, identity)
    if text is None:
        return {}
    return envfile.parse_secrets(text, str(secrets.which(path)))


def load_secrets(inv: Inventory, machine: str, env: str, entry: CatalogEntry) -> dict:
    """The service's secrets from ``secrets/{machine}-{env}.env`` beside the inventory."""
    if not entry.secrets:
        return {}
    path = secrets_path(inv, machine, env)
    values = read_secrets(path, inv.age_identity)
    missing = [k for k in entry.secrets if not values.get(k)]
    if missing:
        raise InputError(f"service {entry.name} needs {', '.join(missing)} in "
                         f"{secrets.which(path) or path} "
                         f"(KEY=value lines; {envfile.PRIVATE_HINT})")
    for k in entry.secrets:
        envfile.quote(k, values[k])  # a value no .env can carry is refused here, first
    return {k: values[k] for k in entry.secrets}


def check_secrets(inv: Inventory, machine: str, env: str, service: str) -> None:
    """Everything about a service's secrets that can be checked before any host is contacted."""
    load_secrets(inv, machine, env, service_entry(inv, machine, service))


def secret_lines(secrets: dict) -> str:
    """The secrets as ``.env`` lines, each value quoted for bash and compose alike."""
    return "".join(envfile.line(k, v) + "\n" for k, v in secrets.items())


def service_dir(smep: Smep, service: str) -> str:
    return f"{smep.mount_point}/service/{service}"


@dataclass(frozen=True)
class Rendered:
    """What a deploy writes for a service: its compose file, its .env and, for a service from
    its own folder, the build context (files, digest) uploaded with it."""

    compose: str
    env: str
    folder: Path | None = None
    context_files: tuple = ()
    context_digest: str = ""
    build: bool = False
    public: tuple = ()  # the keys of .env whose values hold no secret (shown in a diff)
    compose_secret: bool = False  # the compose file holds a secret value


def port_lines(smep: Smep, ports: dict) -> str:
    """``TIN_PORT_<NAME>=<port>`` for each port name the inventory maps, so a service's own
    ``service.env`` can say ``WEB_PORT=${TIN_PORT_WEB}``."""
    return "".join(f"TIN_PORT_{name.upper().replace('-', '_')}={smep.ports[index]}\n"
                   for name, index in sorted(ports.items()))


def public_keys(env: str, secrets: dict) -> tuple:
    """The keys of the ``.env`` text ``env`` that are not secrets and whose values hold no
    secret value: what a diff may show in clear."""
    out = []
    for line in env.splitlines():
        key, eq, value = line.partition("=")
        if eq and envfile.KEY_RE.fullmatch(key) and key not in secrets \
                and not any(v and v in value for v in secrets.values()):
            out.append(key)
    return tuple(out)


def _builds(compose: str, where: str) -> bool:
    try:
        data = yaml.safe_load(compose) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{where} is not valid YAML: {e}") from None
    services = data.get("services") if isinstance(data, dict) else None
    return isinstance(services, dict) and any(
        isinstance(v, dict) and "build" in v for v in services.values())


def _render_folder(entry: CatalogEntry, smep: Smep, ctx: dict) -> Rendered:
    folder = entry.folder
    names = context.context_files(folder)  # refuses links, FIFOs, sockets, devices
    if context.exists(folder, "docker-compose.yml.j2"):
        compose = render("docker-compose.yml.j2", ctx, root=folder, folder=True)
    else:
        compose = context.read_text(folder, "docker-compose.yml")
    if context.exists(folder, "service.env.j2"):
        own = render("service.env.j2", ctx, root=folder, folder=True)
    elif context.exists(folder, "service.env"):
        own = context.read_text(folder, "service.env")
    else:
        own = ""
    env = (f"# {entry.name} for {smep.label}, written by tinsnip from {folder}\n"
           + port_lines(smep, ctx["ports"]) + own
           + ("" if own.endswith("\n") or not own else "\n")
           + secret_lines(ctx["secrets"]))
    envfile.check_text(env, str(folder / "service.env"))
    return Rendered(compose, env, folder, tuple(names), context.digest(folder, names),
                    _builds(compose, str(folder / "docker-compose.yml")),
                    public_keys(env, ctx["secrets"]))


def check_service(inv: Inventory, machine_name: str, service: str) -> None:
    """Raise unless the inventory lists ``service`` under the machine."""
    machine = inv.machine(machine_name)
    if service not in machine.services:
        raise InputError(f"machine {machine_name} does not run {service!r} in {inv.path}; it "
                         f"runs: {', '.join(machine.services) or 'nothing'} (add it under "
                         f"machines: {machine_name}: services)")


def render_service(inv: Inventory, smep: Smep, service: str) -> Rendered:
    """The compose file and the .env of ``service`` for this machine-environment."""
    check_service(inv, smep.machine, service)
    machine = inv.machine(smep.machine)
    entry = service_entry(inv, smep.machine, service)
    ports = machine.services[service].ports
    missing = [p for p in entry.ports if p not in ports]
    if missing:
        raise InputError(f"{inv.path}: machines.{smep.machine}.services.{service} must map the "
                         f"port names {', '.join(missing)} to TIN_PORT indexes 0..9")
    ctx = {"smep": smep, "ports": ports, "image": entry.image,
           "secrets": load_secrets(inv, smep.machine, smep.env, entry)}
    if entry.folder is not None:
        out = _render_folder(entry, smep, ctx)
    else:
        base = f"services/{service}"
        env = render(f"{base}/service.env.j2", ctx)
        env += ("" if env.endswith("\n") or not env else "\n") + secret_lines(ctx["secrets"])
        out = Rendered(render(f"{base}/docker-compose.yml.j2", ctx),
                       envfile.check_text(env, f"{base}/service.env.j2"),
                       public=public_keys(env, ctx["secrets"]))
    return replace(out, compose_secret=any(v and v in out.compose
                                           for v in ctx["secrets"].values()))


@step("service.files", needs=("machine.mount",))
def files(t: Target) -> list:
    """The service's folders on the mount and its files (rendered by :func:`render_service`),
    all made by the machine user (on the mount root never writes)."""
    smep, service = t.smep, t.service
    compose, env = t.rendered.compose, t.rendered.env
    d = service_dir(smep, service)
    u = smep.uid
    out = [Directory(d, mode=0o750, owner=u)]
    out += [Directory(f"{smep.mount_point}/{f}/{service}", mode=0o750, owner=u)
            for f in DATA_FOLDERS]
    out += [File(f"{d}/docker-compose.yml", compose.encode(), mode=0o640, owner=u,
                 holds_secret=t.rendered.compose_secret),
            File(f"{d}/.env", env.encode(), mode=0o600, secret=True, owner=u,
                 public=t.rendered.public),
            recorded(f"{d}/.env", env.encode(), smep.mount_point)]
    return out


@step("service.context", needs=("machine.mount", "service.files"))
def upload(t: Target) -> list:
    """The build context of a service from its own folder (nothing for a catalog service)."""
    smep, service, rendered = t.smep, t.service, t.rendered
    if rendered.folder is None:
        return []
    folder, names = rendered.folder, list(rendered.context_files)
    return [ContextTree(smep.uid, service_dir(smep, service), rendered.context_digest,
                        lambda: context.tarball(folder, names))]


@step("service.image", needs=("machine.docker",))
def image(t: Target) -> list:
    """The service's image in the user's daemon, loaded from the archive ``service.yaml`` names
    (``image_archive``, a file on the host) if missing; nothing for a service without one."""
    smep, entry = t.smep, service_entry(t.inv, t.smep.machine, t.service)
    if not entry.image_archive:
        return []
    return [DockerImage(smep.user, smep.uid, entry.image, entry.image_archive)]


def tracked_images(t: Target) -> tuple:
    """The images a deploy of the service tracks (core/images.py): what it pulls, and the
    bases of what it builds."""
    where = str(t.rendered.folder / "docker-compose.yml") if t.rendered.folder else \
        f"services/{t.service}/docker-compose.yml.j2"
    return img.tracked(t.rendered.compose, t.rendered.folder, where)


@step("service.pull", needs=("machine.docker",))
def pull(t: Target) -> list:
    """``--pull``: every tracked image as the registry serves it now (pulled where the digest
    differs); ``service.up`` then starts again what uses a new one."""
    refs = tracked_images(t)
    return [ImagesPulled(t.smep.user, t.smep.uid, refs)] if refs else []


def stamp(smep: Smep, rendered: Rendered) -> str:
    """Digest of every file the service is started from, as :func:`files` writes them, and of
    its build context."""
    digest = hashlib.sha256()
    for part in (rendered.compose, rendered.env, machine_env_text(smep), rendered.context_digest):
        digest.update(hashlib.sha256(part.encode()).digest())
    return digest.hexdigest()


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
    facts = preflight.parse(h.execute(preflight.script(smep.user, smep.mount_point, d),
                                      step="service.check", show="docker compose config",
                                      secret=True).stdout)
    missing = set()
    paths = preflight.bind_paths_to_check(facts, smep, home(smep)) if facts["config"] else []
    if paths:
        out = h.execute(preflight.exists_script(smep.user, paths), step="service.check",
                        show="look for bind sources").stdout
        missing = {line.strip() for line in out.splitlines() if line.strip()}
    findings = preflight.evaluate(service, t.rendered.compose, facts, smep, home(smep), missing)
    errors = [f for f in findings if f.level == "error"]
    for f in findings:
        if f.level == "warning":
            h.note("service.check", "warning", str(f))
    if errors:
        raise PreflightError(h.name, "service.check", errors)
    h.note("service.check", "ok", f"docker compose config of {service}: "
                                  f"{len(facts['config'].get('services', {}))} service(s) pass")


def wait_seconds(t: Target) -> int:
    """How long a deploy waits for the service to be healthy: ``--wait``, else the inventory's
    ``wait:`` for the service, else its ``service.yaml``'s, else :data:`health.DEFAULT_WAIT`."""
    svc = t.inv.machine(t.smep.machine).services.get(t.service)
    for value in (t.wait, svc.wait if svc else None,
                  service_entry(t.inv, t.smep.machine, t.service).wait if svc else None):
        if value is not None:
            return value
    return health.DEFAULT_WAIT


def gate(t: Target) -> health.Gate:
    """The health gate of the service: its containers, and each port the inventory maps for it.
    (What it reports, container logs included, is printed through the run's mask of secrets.)"""
    smep, service = t.smep, t.service
    svc = t.inv.machine(smep.machine).services[service]
    return health.Gate(smep.user, smep.uid, smep.mount_point, service_dir(smep, service), service,
                       tuple((name, smep.ports[i]) for name, i in sorted(svc.ports.items())),
                       wait_seconds(t))


def generations(smep: Smep, service: str) -> str:
    return health.generations_dir(smep.mount_point, service)


@step("service.generation", needs=("machine.mount", "service.pull"))
def generation(t: Target) -> list:
    """Before a deploy changes the running service (its files, or an image ``--pull``
    brought), what it runs is kept as a generation."""
    smep, service = t.smep, t.service
    return [health.SaveGeneration(smep.user, smep.uid, smep.mount_point,
                                  service_dir(smep, service), generations(smep, service), service,
                                  stamp(smep, t.rendered), images=tracked_images(t))]


def verify(h: Host, failure, target: Target) -> None:
    """After ``compose up``: wait for the service to be healthy, else roll it back (or stop it)
    and fail (:func:`health.after_up`)."""
    t = target
    health.after_up(h, failure, gate=gate(t), stamp=stamp(t.smep, t.rendered), step="service.up",
                    gens_dir=generations(t.smep, t.service), images=tracked_images(t))


@step("service.up", needs=("machine.mount", "machine.docker", "machine.env", "service.files",
                          "service.context", "service.image", "service.pull"), before=check,
      after=verify)
def up(t: Target) -> list:
    """The Compose project runs with its current files and images (the seed's ``up -d`` when
    not); the preflight (:func:`check`) runs first, and only when something is to start."""
    smep, service = t.smep, t.service
    return [ComposeUp(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                      service, stamp(smep, t.rendered), t.rendered.build, tracked_images(t))]


def check_runs(inv: Inventory, smep: Smep, service: str) -> None:
    """A valid service name (a service no longer in the inventory can still be removed)."""
    validate_name("service", service)


def owner(smep: Smep, service: str) -> str:
    """The tag of a forward: ``machine-env:service``."""
    return f"{smep.user}:{service}"


def _port_index(inv: Inventory, machine: str, service: str, to: str) -> int:
    """The TIN_PORT index ``--to`` names: an index 0..9, or a port name of ``service``."""
    svc = inv.machine(machine).services.get(service)
    ports = svc.ports if svc else {}
    if re.fullmatch(r"[0-9]", str(to)):
        return int(to)
    if to in ports:
        return ports[to]
    raise InputError(f"--to {to!r} is neither a TIN_PORT index 0..9 nor a port name of {service} "
                     f"({', '.join(ports) or 'no port names in the inventory'})")


def positive(option: str, value) -> int:
    """A whole number > 0 given on the command line, or an error naming the option."""
    if not re.fullmatch(r"[0-9]{1,9}", str(value)) or int(value) == 0:
        raise InputError(f"{option} {value!r} is not a whole number above 0")
    return int(value)


def forward_port(port, to: str, *, remove: bool) -> int:
    """``--port`` as a number 1..65535, and a ``--to`` unless removing."""
    port = positive("--port", port)
    if port > 65535:
        raise InputError(f"--port {port} is not a port number 1..65535")
    if not remove and not to:
        raise InputError("say where the port goes: --to PORTNAME or --to INDEX (0..9)")
    return port


def check_forward(inv: Inventory, machine: str, env: str, port, to: str, service: str, *,
                  remove: bool) -> tuple[int, str]:
    """Everything about a ``service.forward`` that the inventory decides, before any host is
    contacted: the port, the service (given, or the one with the ``--to`` port name), the
    target, and a listening port that is neither the host's SSH port nor in a SMEP range of the
    host (:meth:`Inventory.port_owner`). Returns (port, service)."""
    inv.check_env(machine, env)
    port = forward_port(port, to, remove=remove)
    service = service or service_with_port(inv, machine, to)
    validate_name("service", service)
    if remove:  # a forward of a service no longer in the inventory can still be removed
        return port, service
    check_service(inv, machine, service)
    _port_index(inv, machine, service, to)
    why = inv.port_owner(machine, port)
    if why:
        raise InputError(f"--port {port} of {inv.machine(machine).host} is {why}; forward a "
                         "standard port (80, 443, 389...)")
    return port, service


def forward_to(inv: Inventory, smep: Smep, service: str, port: int, to: str, *,
               remove: bool) -> Forward:
    """The forward ``service.forward`` asks for (checked by :func:`check_forward`): to one of
    the environment's own ten ports, never to a port given as a number."""
    if remove:
        return Forward(port, None, owner(smep, service))
    return Forward(port, smep.ports[_port_index(inv, smep.machine, service, to)],
                   owner(smep, service))


@step("service.forward")
def forwards(t: Target) -> list:
    """The inventory's ``forward:`` entries of the service in this environment."""
    inv, smep, service = t.inv, t.smep, t.service
    svc = inv.machine(smep.machine).services.get(service)
    return [Forward(port, smep.ports[svc.ports[name]], owner(smep, service))
            for port, name, env in (svc.forward if svc else ()) if env == smep.env]


@step("service.down")
def down(t: Target) -> list:
    """The Compose project stopped and its containers removed."""
    smep, service = t.smep, t.service
    return [ComposeDown(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                        service)]


@step("service.remove", needs=("service.down",))
def removed(t: Target) -> list:
    """The service's folder on the mount (files and build context) and its forwards; its data,
    state and config folders are NAS data and stay."""
    smep, service = t.smep, t.service
    return [Absent(service_dir(smep, service), smep.uid),
            Absent(generations(smep, service), smep.uid),
            health.GenerationTags(smep.user, smep.uid, service),
            Forward(None, None, owner(smep, service))]


def service_with_port(inv: Inventory, machine: str, name: str) -> str:
    """The one service of ``machine`` with a port called ``name``."""
    found = [s for s, svc in inv.machine(machine).services.items() if name in svc.ports]
    if len(found) != 1:
        raise InputError(f"{'no' if not found else 'more than one'} service of {machine} has a port "
                         f"named {name!r}; say which with --service")
    return found[0]


def rollback(h: Host, t: Target) -> None:
    """``service.rollback``: the service back to its newest kept generation (which is dropped,
    so a second call goes one further back); ok when no generation is kept. Then the health
    gate: a generation that is not healthy fails the step (nothing further is rolled back)."""
    smep, service = t.smep, t.service
    want = health.Rollback(smep.user, smep.uid, smep.mount_point, service_dir(smep, service),
                           generations(smep, service), service)
    label = f"{t.scope} {service}"
    if h.conn is None:
        h.note("service.rollback", "unchecked", "host not reachable; would " + want.describe(),
               label=label)
        return
    versions = want.parse(h.read([want], step="service.rollback")[0])
    gens = versions.gens
    if not gens:
        h.note("service.rollback", "ok", f"no older generation of {service} is kept in "
                                         f"{generations(smep, service)}", label=label)
        return
    g = gens[-1]
    what = (f"{service} back to generation {g.number} (saved {g.saved or '?'}, stamp "
            f"{g.stamp[:12] or '?'}); {len(gens) - 1} older kept")
    cmds = want.commands(versions)
    if h.dry:
        h.note("service.rollback", "would change", what, commands=[str(c) for c in cmds],
               label=label)
        return
    for c in cmds:
        h.execute(c.text, step="service.rollback", show=c.show)
    h.result.rolled_back += 1
    check_gate = gate(t)
    if check_gate.wait:
        healthy, state = check_gate.wait_healthy(h, "service.rollback")
        if not healthy:
            raise HealthError(f"{what}, but it is not healthy within {check_gate.wait} s:\n"
                                     + check_gate.report(h, "service.rollback", state))
    h.note("service.rollback", "changed", what, commands=[str(c) for c in cmds], label=label)


#: service.deploy: the generation kept, files, build context, image, (preflight and) compose
#: project (and its health gate), forwards.
DEPLOY = (generation, files, upload, image, up, forwards)
#: service.deploy --pull: every tracked image pulled first, then the same (the generation is
#: kept after the pull, which changes no running container, so a new image is a new version).
DEPLOY_PULL = (pull, generation, files, upload, image, up, forwards)


def deploy_steps(pull_images: bool) -> tuple:
    return DEPLOY_PULL if pull_images else DEPLOY


#: service.remove: compose down, then the service's folder, generations and forwards.
REMOVE = (down, removed)
