"""Health-gated deploys: generations of a service kept on its mount, the wait for a started
Compose project to be healthy, and the way back to the previous generation.

A **generation** is what a service ran before a deploy changed it, kept on the mount in
``service/.generations/<service>/<n>/`` (written as the machine user, like everything there):
``files/`` a copy of the service folder (compose file, ``.env`` mode 0600, build context and
deploy stamp), ``images`` the image each container ran (``<compose service> <image ID>
<reference>``), ``next`` the stamp of the deploy that replaced it and ``saved`` when. Each
image is also tagged ``tinsnip-generation/<service>:<n>-<short ID>`` so neither ``docker image
prune`` nor a re-pull of its tag loses it. The newest :data:`KEEP` generations are kept.

After ``compose up`` the :class:`Gate` polls until every container runs (healthy, when it has a
healthcheck) and each declared port accepts a TCP connection on the host, up to ``wait``
seconds. :func:`after_up` does that after a deploy's ``service.up``; when the version is not
healthy in time, it brings back the generation that version replaced (:func:`restore_cmd`) or,
with none, stops it, and fails the step with what the containers said.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from ..core.inventory import MAX_WAIT
from ..errors import HealthError, InputError, RemoteError
from .base import Cmd, Resource, q
from .docker import (STAMP, as_user, compose_as, compose_pattern, project_filter, runtime_dir,
                     service_fact, service_sections, versions_script)
from .resources import as_uid

#: Seconds a deploy waits for a service to be healthy when nothing else says (``wait: 0`` in
#: the inventory or ``service.yaml``, or ``--wait 0``, turns the gate off).
DEFAULT_WAIT = 60
#: Generations kept per service; older ones (and their image tags) are removed.
KEEP = 3
GENERATIONS = ".generations"
TAG_REPO = "tinsnip-generation"
POLL = 1.0  # seconds between two looks at the containers
LOG_LINES = 20  # last log lines of a container that is not healthy
HEALTH_ENTRIES = 3  # last healthcheck results shown
CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
sleep, clock = time.sleep, time.monotonic


def generations_dir(mount_point: str, service: str) -> str:
    return f"{mount_point}/service/{GENERATIONS}/{service}"


def parse_wait(value, where: str = "--wait"):
    """``value`` as whole seconds 0..MAX_WAIT (``""``/None: not given, so None)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,4}", str(value)) \
            or int(value) > MAX_WAIT:
        raise InputError(f"{where} {value!r} is not a number of seconds 0..{MAX_WAIT} "
                         f"(0 turns the health gate off)")
    return int(value)


def as_user_bash(user: str, uid: int, script: str) -> str:
    """``script`` run by bash as ``user``, with its rootless daemon as the Docker host."""
    return as_user(user, uid, f"bash -c {q(script)}")


# -- generations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Generation:
    number: int
    stamp: str  # the version it ran (:func:`generations_fact`)
    next: str  # the version of the deploy that replaced it
    saved: str


def generations_fact(user: str, uid: int, service_dir: str, gens_dir: str,
                     images: tuple = ()) -> str:
    """Prints ``live=<version>`` (the running deploy's), ``now=<images key>`` (of the tracked
    ``images`` as the daemon holds them now) and one ``gen=`` line per kept generation, oldest
    first; read by the machine user with its daemon.

    A deploy's **version** is its stamp's first line (the files' digest) and, after a ``+``, a
    key of its ``image REF ID`` lines (:func:`~.docker.image_lines`), so a new image under the
    same tag (``--pull``) is a new version as much as new files are."""
    return as_user_bash(user, uid, "cd / && " + versions_script(service_dir, gens_dir, images))


class Versions(NamedTuple):
    live: str  # the running deploy's version ("" before the first deploy)
    gens: list  # the kept generations, oldest first
    now: str  # the key of the tracked images as the daemon holds them now

    def next(self, stamp: str) -> str:
        """The version a deploy of the files ``stamp`` starts with the images there are now."""
        return f"{stamp}+{self.now}" if self.now else stamp


def version_key(text: str) -> str:
    """The key of the ``image`` lines in ``text``: the first 12 hex digits of the SHA-256 of
    those lines sorted bytewise, each ended by a newline, as :func:`versions_script` computes
    it on the host."""
    lines = sorted((l for l in text.split("\n") if l.startswith("image ")),
                   key=lambda l: l.encode())
    return hashlib.sha256("".join(f"{l}\n" for l in lines).encode()).hexdigest()[:12]


def version_of(stamp: str) -> str:
    """The version a deploy stamp's text stands for: its first line and, after a ``+``, the key
    of its image lines (``""``: no stamp)."""
    first = stamp.split("\n", 1)[0]
    return f"{first}+{version_key(stamp)}" if first else ""


def parse_generations(out: str) -> Versions:
    """:class:`Versions` from :func:`generations_fact`'s output."""
    live, now, gens = "", "", []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("live="):
            live = line[5:].strip()
        elif line.startswith("now="):
            now = line[4:].strip()
        elif line.startswith("gen="):
            fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
            gens.append(Generation(int(fields["gen"]), fields.get("stamp", ""),
                                   fields.get("next", ""), fields.get("saved", "")))
    return Versions(live, sorted(gens, key=lambda g: g.number), now)


def _untag(project: str, number: str) -> str:
    """Shell: remove the image tags of generation ``number`` (a shell word) of ``project``."""
    repo = q(f"{TAG_REPO}/{project}")
    return (f"for t in $(docker images {repo} --format '{{{{.Tag}}}}' | grep \"^{number}-\"); do "
            f"docker rmi {repo}:\"$t\" >/dev/null 2>&1 || true; done")


def _prune(gens_dir: str, project: str, keep: int) -> str:
    g = q(gens_dir)
    return (f"for old in $(ls -1 {g} | grep -x '[0-9][0-9]*' | sort -rn | tail -n +{keep + 1}); "
            f"do {_untag(project, '$old')}; rm -rf {g}/\"$old\"; done")


@dataclass(frozen=True)
class Generations(Resource):
    """The generations kept of a service and its running deploy stamp: the fact that
    :class:`SaveGeneration` and :class:`Rollback` read."""

    user: str
    uid: int
    mount_point: str
    service_dir: str
    gens_dir: str
    project: str

    def fact_command(self):
        return generations_fact(self.user, self.uid, self.service_dir, self.gens_dir)

    def parse(self, out):
        return parse_generations(out)


@dataclass(frozen=True)
class SaveGeneration(Generations):
    """Before a deploy changes a running service, what it runs is kept as a new generation.

    Nothing to keep on a first deploy (no deploy stamp yet) or when the deploy starts the files
    already running (same stamp). A generation already holding the running files (an earlier
    deploy that stopped before ``compose up``) is kept as it is, with its ``next`` updated.
    """

    stamp: str = ""  # the stamp of the deploy about to run
    keep: int = KEEP
    images: tuple = ()  # its tracked image references: a new image is a new version too

    def fact_command(self):
        # the fact service.up reads too (ComposeUp): one process of the user for both
        return service_fact(self.user, self.uid, self.mount_point, self.service_dir,
                            self.gens_dir, self.project, self.images)

    def parse(self, out):
        """The generations from the host; the running version and ``now`` keyed here, from
        the stamp and the image lines the same fact printed (:func:`~.docker.service_fact`)."""
        parts = service_sections(out)
        return parse_generations(parts["versions"])._replace(
            live=version_of(parts["stamp"]), now=version_key(parts["images"]))

    def describe(self):
        return f"what {self.project} runs kept in {self.gens_dir} before a deploy changes it"

    def commands(self, fact):
        live, gens = fact.live, fact.gens
        coming = fact.next(self.stamp)
        if not live or live == coming:
            return []
        nxt = q(coming)
        g = q(self.gens_dir)
        if gens and gens[-1].stamp == live:
            if gens[-1].next == coming:
                return []
            n = gens[-1].number
            return [Cmd(as_uid(self.uid, f"echo {nxt} > {g}/{n}/next"),
                        f"as {self.user}: generation {n} of {self.project} is replaced by "
                        f"{coming[:12]}")]
        n = (gens[-1].number if gens else 0) + 1
        new = f"{g}/.new-{n}"
        ps = (f"docker ps -aq {project_filter(self.project)} "
              f"--filter label=com.docker.compose.oneoff=False")
        fmt = q('{{index .Config.Labels "com.docker.compose.service"}} {{.Image}} '
                '{{.Config.Image}}')
        tag = q(f"{TAG_REPO}/{self.project}:{n}-")
        script = (
            f"set -e; umask 077; mkdir -p {g}; rm -rf {new}; mkdir {new}; "
            f"cp -R -P --preserve=mode,timestamps {q(self.service_dir)} {new}/files; "
            f"for c in $({ps}); do docker inspect --format {fmt} \"$c\"; done > {new}/images; "
            f"while read -r s id ref; do "
            f"docker tag \"$id\" {tag}\"$(echo \"${{id#sha256:}}\" | cut -c1-12)\"; "
            f"done < {new}/images; "
            f"echo {nxt} > {new}/next; date -u +%Y-%m-%dT%H:%M:%SZ > {new}/saved; "
            f"mv -T {new} {g}/{n}; {_prune(self.gens_dir, self.project, self.keep)}")
        return [Cmd(as_user_bash(self.user, self.uid, script),
                    f"as {self.user}: keep what {self.project} runs as generation {n} in "
                    f"{self.gens_dir}/{n} (files, .env, build context, image IDs); keep the "
                    f"newest {self.keep}")]


def restore_cmd(user: str, uid: int, mount_point: str, service_dir: str, gens_dir: str,
                project: str, number: int) -> Cmd:
    """Bring generation ``number`` back: its images under the references it ran them as, its
    folder swapped in for the service folder, ``compose up`` (every container recreated, orphans
    removed); then the generation is dropped (it is what runs now). A failure before the end
    leaves the generation in place, so the same restore can run again."""
    g, d = q(gens_dir), q(service_dir)
    src = f"{g}/{int(number)}"
    new, old = q(service_dir + ".tinsnip-new"), q(service_dir + ".tinsnip-old")
    gone = (f"the image $id that $s ran in generation {int(number)} of {project} is gone "
            f"(removed with docker image prune -a or docker rmi?)")
    script = (
        f"set -e; umask 077; [ -d {src}/files ] || "
        f"{{ echo {q(f'generation {number} of {project} is not in {gens_dir}')} >&2; exit 1; }}; "
        f"while read -r s id ref; do "
        f"docker image inspect \"$id\" >/dev/null 2>&1 || {{ echo \"{gone}\" >&2; exit 1; }}; "
        f"case \"$ref\" in ''|sha256:*) ;; *) docker tag \"$id\" \"$ref\";; esac; "
        f"done < {src}/images; "
        f"rm -rf {new} {old}; cp -R -P --preserve=mode,timestamps {src}/files {new}; "
        f"if [ -d {d} ]; then mv -T {d} {old}; fi; mv -T {new} {d}; rm -rf {old}; "
        f"( {compose_pattern(mount_point, service_dir, 'up -d --force-recreate --remove-orphans', build=True)} ); "
        f"{_untag(project, str(int(number)))}; rm -rf {src}")
    return Cmd(as_user_bash(user, uid, script),
               f"as {user}: bring generation {number} of {project} back from {gens_dir}/{number} "
               f"(images, files, .env, build context) and compose up")


def stop_cmd(user: str, mount_point: str, service_dir: str, project: str) -> Cmd:
    """Stop a version that never became healthy (its containers stay, for their logs) and drop
    its deploy stamp: the next deploy starts it again and keeps no generation of it."""
    return Cmd(compose_as(user, mount_point, service_dir, "stop -t 5")
               + f" && sudo -u {q(user)} rm -f -- {q(service_dir + '/' + STAMP)}",
               f"as {user}: compose stop {project} and remove its deploy stamp")


@dataclass(frozen=True)
class Rollback(Generations):
    """``service.rollback``: the service runs its newest kept generation, which is then dropped
    (so a second rollback goes one generation further back, and none left is ok)."""

    def describe(self):
        return f"{self.project} back one generation (from {self.gens_dir})"

    def commands(self, fact):
        gens = fact.gens
        if not gens:
            return []
        return [restore_cmd(self.user, self.uid, self.mount_point, self.service_dir,
                            self.gens_dir, self.project, gens[-1].number)]


@dataclass(frozen=True)
class GenerationTags(Resource):
    """No image tag of a removed service's generations is left in the user's daemon."""

    user: str
    uid: int
    project: str

    def describe(self):
        return f"no image kept for generations of {self.project}"

    def fact_command(self):
        return (f"[ -S {q(runtime_dir(self.uid) + '/docker.sock')} ] && "
                + as_user(self.user, self.uid,
                          f"docker images {q(TAG_REPO + '/' + self.project)} "
                          "--format '{{.Repository}}:{{.Tag}}'"))

    def parse(self, out):
        return out.split()

    def commands(self, fact):
        if not fact:
            return []
        return [Cmd(as_user(self.user, self.uid, "docker rmi " + " ".join(q(t) for t in fact))
                    + " >/dev/null", f"untag {len(fact)} image(s) of {self.project}'s generations")]


# -- the health gate ------------------------------------------------------------------------
@dataclass(frozen=True)
class Container:
    name: str
    service: str
    state: str
    health: str = ""
    exit_code: int = 0

    @property
    def problem(self) -> str:
        """Why this container is not ready yet, or "" when it is."""
        if self.state == "running":
            if self.health in ("", "healthy"):
                return ""
            return f"running, health {self.health}"
        if self.state == "exited" and self.exit_code == 0 and not self.health:
            return ""  # a one-off task that ran to its end
        return f"{self.state}" + (f" (exit {self.exit_code})" if self.state == "exited" else "")


@dataclass
class State:
    containers: list = field(default_factory=list)
    ports: dict = field(default_factory=dict)  # port number -> accepts a connection
    error: str = ""  # what `compose ps` said when it failed

    def problems(self, names: dict) -> list[str]:
        """Everything that is not ready (empty: healthy). ``names``: port number -> name."""
        out = [f"container {c.name}: {c.problem}" for c in self.containers if c.problem]
        if not self.containers:
            out.append("no container of the project exists"
                       + (f" ({self.error})" if self.error else ""))
        out += [f"port {p} ({names.get(p, '?')}): no TCP connection on the host"
                for p, ok in sorted(self.ports.items()) if not ok]
        return out


@dataclass(frozen=True)
class Gate:
    """The wait for a started Compose project to be healthy, and what it shows when it is not."""

    user: str
    uid: int
    mount_point: str
    service_dir: str
    project: str
    ports: tuple = ()  # (port name, port number)
    wait: int = DEFAULT_WAIT

    def poll_command(self) -> str:
        """Each container of the project (``compose ps``, orphans left out) and, per port,
        whether a TCP connection to it on the host is accepted and held (a port forwarder that
        accepts and then drops the connection because nothing listens behind it counts as
        closed)."""
        ps = compose_as(self.user, self.mount_point, self.service_dir,
                        "ps -a --orphans=false --format json")
        probe = ("exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1; read -r -t 0.3 -N 1 x <&3; "
                 "rc=$?; [ $rc -gt 128 ] || [ -n \"$x\" ]")
        checks = "".join(
            f"if timeout 3 bash -c {q(probe)} {int(p)} 2>/dev/null; then echo 'port {int(p)} open'; "
            f"else echo 'port {int(p)} closed'; fi; " for _, p in self.ports)
        return f"{ps} 2>&1; echo @@ports; {checks}true"

    def parse(self, out: str) -> State:
        state = State()
        head, _, tail = out.partition("@@ports")
        for line in head.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except ValueError:
                state.error = line
                continue
            for c in data if isinstance(data, list) else [data]:
                state.containers.append(Container(
                    str(c.get("Name", "")), str(c.get("Service", "")), str(c.get("State", "")),
                    str(c.get("Health", "") or ""), int(c.get("ExitCode") or 0)))
        for line in tail.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "port" and words[1].isdigit():
                state.ports[int(words[1])] = words[2] == "open"
        return state

    @property
    def port_names(self) -> dict:
        return {p: n for n, p in self.ports}

    def wait_healthy(self, h, step: str) -> tuple[bool, State]:
        """Poll until healthy or ``wait`` seconds have passed; (healthy, the last state)."""
        deadline = clock() + self.wait
        while True:
            state = self.parse(h.execute(self.poll_command(), step=step,
                                         show=f"look at {self.project}'s containers and ports").stdout)
            if not state.problems(self.port_names):
                return True, state
            if clock() >= deadline:
                return False, state
            sleep(POLL)

    def diagnose_command(self, names) -> str:
        """Per container: its last healthcheck results and the last lines of its log."""
        fmt = q("{{json .State.Health}}")
        parts = []
        for n in names:
            c = q(n)
            parts.append(f"echo @@container {c}; docker inspect --format {fmt} {c} 2>&1; "
                         f"echo @@log; docker logs --tail {LOG_LINES} {c} 2>&1")
        return as_user_bash(self.user, self.uid, "; ".join(parts) + "; true")

    def report(self, h, step: str, state: State) -> str:
        """What is wrong, per container: state, last healthcheck results, last log lines."""
        lines = [f"  {p}" for p in state.problems(self.port_names)]
        bad = [c.name for c in state.containers if c.problem and CONTAINER_NAME.fullmatch(c.name)]
        if bad:
            out = h.execute(self.diagnose_command(bad), step=step,
                            show=f"healthcheck results and logs of {', '.join(bad)}").stdout
            lines += parse_diagnosis(out)
        return "\n".join(lines)


def parse_diagnosis(out: str) -> list[str]:
    """Lines of the report from :meth:`Gate.diagnose_command`'s output."""
    lines, name, section = [], "", ""
    for raw in out.splitlines():
        if raw.startswith("@@container "):
            name, section = raw.split(" ", 1)[1], "health"
            continue
        if raw == "@@log":
            section = "log"
            lines.append(f"  {name}: last log lines:")
            continue
        if section == "health":
            try:
                health = json.loads(raw) if raw.strip() not in ("", "null") else None
            except ValueError:
                health = None
            if not health:
                lines.append(f"  {name}: no healthcheck")
                continue
            lines.append(f"  {name}: health {health.get('Status', '?')}, "
                         f"{health.get('FailingStreak', 0)} failing check(s) in a row; last:")
            for entry in (health.get("Log") or [])[-HEALTH_ENTRIES:]:
                output = " ".join(str(entry.get("Output", "")).split())
                lines.append(f"    exit {entry.get('ExitCode', '?')}: {output[:300]}")
        elif section == "log":
            lines.append(f"    | {raw}")
    return lines


def after_up(h, failure, *, gate: Gate, stamp: str, step: str, gens_dir: str,
             images: tuple = ()) -> None:
    """After ``compose up`` started ``stamp`` (``failure``: its RemoteError, or None): wait
    for it to be healthy. When it is not in time (or ``up`` failed), bring back the generation
    it replaced and count the rollback, or stop it when it replaced none; then raise
    :class:`HealthError`. ``gate.wait == 0`` turns all of this off."""
    if gate.wait == 0:
        if failure is not None:
            raise failure
        return
    state = None
    if failure is None:
        healthy, state = gate.wait_healthy(h, step)
        if healthy:
            return
        what = f"{gate.project} was not healthy within {gate.wait} s"
        details = gate.report(h, step, state)
    else:
        what = f"docker compose up of {gate.project} failed (exit {failure.exit_code})"
        tail = (failure.stderr or "").strip().splitlines()[-5:]
        details = "\n".join(f"    | {line}" for line in tail)
        state = gate.parse(h.execute(gate.poll_command(), step=step, show="look at containers").stdout)
        details += ("\n" if details else "") + gate.report(h, step, state)
    out = h.execute(generations_fact(gate.user, gate.uid, gate.service_dir, gens_dir, images),
                    step=step, show="read generations").stdout
    versions = parse_generations(out)
    started, gens = versions.next(stamp), versions.gens
    previous = (gens[-1] if gens and gens[-1].next == started and gens[-1].stamp != started
                else None)
    if previous is None:
        cmd = stop_cmd(gate.user, gate.mount_point, gate.service_dir, gate.project)
        h.execute(cmd.text, step=step, show=cmd.show)
        raise HealthError(f"{what}; no earlier generation to go back to: left stopped\n"
                          + details)
    cmd = restore_cmd(gate.user, gate.uid, gate.mount_point, gate.service_dir, gens_dir,
                      gate.project, previous.number)
    try:
        h.execute(cmd.text, step=step, show=cmd.show)
    except RemoteError as e:
        raise HealthError(f"{what}; bringing back generation {previous.number} failed too "
                          f"(service.rollback tries again): {e}\n" + details) from None
    h.result.rolled_back += 1
    healthy, again = gate.wait_healthy(h, step)
    after = ("which is healthy" if healthy else
             "which is not healthy either:\n" + "\n".join(
                 f"  {p}" for p in again.problems(gate.port_names)))
    raise HealthError(f"{what}; rolled back to generation {previous.number} "
                      f"(saved {previous.saved or '?'}), {after}\n" + details)
