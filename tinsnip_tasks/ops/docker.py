"""Rootless Docker for a machine user, its images, and Compose projects started the seed's way."""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Callable

from ..core import images as img
from ..core.render import render
from ..errors import ConflictError
from .base import READ_INIT, Cmd, Resource, q, sh
from .gate import end_processes, user_manager, pids_of, subid_range, sums_file, verified
from .resources import File, as_uid, write_file_cmds

ROOTLESS_SCRIPTS = (
    "/usr/share/docker.io/contrib/dockerd-rootless.sh",
    "/usr/bin/dockerd-rootless.sh",
    "/usr/local/bin/dockerd-rootless.sh",
)
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def runtime_dir(uid: int) -> str:
    return f"/run/user/{uid}"


def docker_host(uid: int) -> str:
    """Where the rootless daemon's socket is, with systemd (user unit) and without (our start)."""
    return f"unix://{runtime_dir(uid)}/docker.sock"


def has_socket(uid: int) -> str:
    """Shell: whether the rootless daemon's socket is there, looked at as the user (its runtime
    folder is the user's)."""
    return as_uid(uid, f"[ -S {q(runtime_dir(uid) + '/docker.sock')} ]")


def as_user(user: str, uid: int, command: str) -> str:
    """``command`` run by ``user`` with the rootless daemon as its Docker host."""
    return f"sudo -u {q(user)} env DOCKER_HOST={q(docker_host(uid))} {command}"


def seed_env(mount_point: str, service_dir: str, *, words: bool = False,
             sums: str = "") -> str:
    """The seed's deploy environment: export both env files for compose interpolation, keep the
    NFS XDG paths away from Docker, and stand in the service folder.

    Before anything is sourced, both files must hold exactly the bytes tinsnip wrote: their
    SHA-256 is checked against ``sums`` (default: the one of ``mount_point``, kept where only
    root writes); a file that differs is named with the task that writes it again, and nothing
    runs. With ``words=True`` the two paths are shell words already (``"$1"``), used as they
    are, and ``sums`` must be given."""
    quote = (lambda w: w) if words else q
    if not sums:
        if words:
            raise ValueError("seed_env(words=True) needs the path of the digests")
        sums = sums_file(mount_point)
    machine_env = f"{quote(mount_point)}/.machine/machine.env"
    service_env = f"{quote(service_dir)}/.env"
    return (f"{verified(machine_env, sums, 'run machine.setup (or machine.env) to write it again')}"
            f" && {verified(service_env, sums, 'run service.deploy to write it again')} && "
            f"set -a && source {machine_env} && source {service_env} && set +a && "
            f"unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME && "
            f"cd {quote(service_dir)}")


def compose_pattern(mount_point: str, service_dir: str, action: str, *, build=False,
                    words: bool = False, sums: str = "") -> str:
    """The seed's deploy pattern: :func:`seed_env`, then ``docker compose <action>``. With
    ``build`` the classic builder is used (BuildKit cannot mount inside every host)."""
    prefix = "DOCKER_BUILDKIT=0 " if build else ""
    return (f"{seed_env(mount_point, service_dir, words=words, sums=sums)} && "
            f"{prefix}docker compose {action}")


def compose_as(user: str, mount_point: str, service_dir: str, action: str, *,
               build=False) -> str:
    script = compose_pattern(mount_point, service_dir, action, build=build)
    return f"sudo -u {q(user)} bash -c {q(script)}"


def unit_path(home: str) -> str:
    return f"{home}/.config/systemd/user/docker.service"


def unit_text(uid: int, script: str) -> str:
    """The rootless daemon's systemd user unit, starting ``script`` (one of
    :data:`ROOTLESS_SCRIPTS`, the one the host has)."""
    if script not in ROOTLESS_SCRIPTS:
        raise ValueError(f"not a known dockerd-rootless.sh path: {script!r}")
    return render("machine/docker.service.j2", {"uid": int(uid), "rootless_script": script})


def _serves(uid: int) -> str:
    """Shell run as the user, printing ``server=yes`` when the process named in its daemon's
    pid file is the user's ``dockerd``: read by the shell alone (``pgrep`` costs more than
    the rest of the fact)."""
    # dockerd writes the number without a newline: read then fails, having read it
    return (f"pid=; {{ read -r pid < {q(runtime_dir(uid) + '/docker.pid')}; }} 2>/dev/null; "
            "[ -n \"$pid\" ] && [ -O \"/proc/$pid\" ] && "
            "{ read -r c < \"/proc/$pid/comm\"; } 2>/dev/null && "
            "[ \"$c\" = dockerd ] && echo server=yes")


@dataclass(frozen=True)
class RootlessDocker(Resource):
    """A rootless Docker daemon for ``user`` that keeps running after the SSH session ends.

    On a host whose PID 1 is systemd it is the user unit ``docker.service`` (written from the
    template with the ``dockerd-rootless.sh`` the host has), enabled and started in the user's
    own systemd instance, with linger so that instance runs without a login and starts at
    boot. Elsewhere tinsnip starts ``dockerd-rootless.sh`` itself, detached, with its log in
    ``~/.local/state/tinsnip/``. The daemon counts as running when its socket is there (seen
    as the user) and a ``dockerd`` of the user is alive: a process lookup, not a start of the
    docker client (about 35 ms of the host's CPU); a start waits until it answers.
    """

    user: str
    uid: int
    home: str
    wait_seconds: int = 30
    #: The NFS mount its containers bind: on systemd, a daemon started before it was mounted
    #: (a boot while the NAS was down) is restarted, which starts its containers again.
    mount_point: str = ""

    def describe(self):
        return f"rootless docker for {self.user} at {docker_host(self.uid)}"

    def _started_before_mount(self):
        """Shell printing ``before_mount=yes`` when systemd mounted ``mount_point`` after the
        daemon started (both on the monotonic clock, in microseconds)."""
        if not self.mount_point:
            return ""
        return (f"[ \"$init\" = systemd ] && pid=$(pgrep -u {int(self.uid)} -x dockerd | head -n 1) "
                f"&& [ -n \"$pid\" ] && m=$(systemctl show -P ActiveEnterTimestampMonotonic "
                f"\"$(systemd-escape -p --suffix=mount \"$(readlink -f {q(self.mount_point)})\")\" "
                f"2>/dev/null) && [ \"${{m:-0}}\" -gt 0 ] && "
                f"st=$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f20) && "
                f"[ $((st * 1000000 / $(getconf CLK_TCK))) -lt \"$m\" ] && echo before_mount=yes; ")

    def fact_command(self):
        u = q(self.user)
        scripts = " ".join(q(s) for s in ROOTLESS_SCRIPTS)
        unit = unit_path(self.home)
        wants = f"{self.home}/.config/systemd/user/default.target.wants/docker.service"
        sock = runtime_dir(self.uid) + "/docker.sock"
        return (f"{READ_INIT}; echo init=$init; "
                f"for s in {scripts}; do [ -x \"$s\" ] && echo script=$s && break; done; "
                f"command -v rootlesskit >/dev/null && echo rootlesskit=yes; "
                f"command -v newuidmap >/dev/null && echo uidmap=yes; "
                f"[ -e /var/lib/systemd/linger/{u} ] && echo linger=yes; "
                # the user's own files (and runtime folder) are read as the user: a link
                # planted there leads nowhere the user could not read anyway
                + "mine=$(" + as_uid(self.uid, f"[ -f {q(unit)} ] && echo unit=$(sha256sum < "
                                               f"{q(unit)} | cut -c1-64); [ -L {q(wants)} ] && "
                                               f"echo enabled=yes; [ -S {q(sock)} ] && "
                                               f"echo socket=yes && {_serves(self.uid)}")
                + "); echo \"$mine\"; "
                f"[ \"$init\" = systemd ] && {user_manager(self.user)} is-active --quiet "
                f"docker.service && echo active=yes; "
                + self._started_before_mount() + "true")

    def parse(self, out):
        fact = {}
        for line in out.splitlines():
            k, _, v = line.partition("=")
            if k:
                fact[k.strip()] = v.strip()
        return fact

    def commands(self, fact):
        missing = [n for n, k in (("docker.io (dockerd-rootless.sh)", "script"),
                                  ("rootlesskit", "rootlesskit"), ("uidmap", "uidmap"))
                   if not fact.get(k)]
        if missing:
            raise ConflictError("rootless Docker needs " + ", ".join(missing)
                                + " installed (apt-get install docker.io rootlesskit "
                                  "slirp4netns uidmap)")
        if fact.get("init") == "systemd":
            return self._systemd_commands(fact)
        if fact.get("server"):
            return []
        return self._detached_commands(fact["script"])

    def _systemd_commands(self, fact):
        unit = unit_text(self.uid, fact["script"])
        changed = fact.get("unit") != hashlib.sha256(unit.encode()).hexdigest()
        enabled, active, server = (bool(fact.get(k)) for k in ("enabled", "active", "server"))
        if server and not active and not changed:
            raise ConflictError((
                f"a rootless Docker daemon answers for {self.user} but its docker.service "
                f"is not active: it was started outside the unit (from a login session?). "
                f"Stop it (pkill -u {self.user} -x dockerd; pkill -u {self.user} -x "
                f"rootlesskit) and run machine.docker again"))
        systemctl = user_manager(self.user)
        cmds = []
        if changed:
            cmds.append(Cmd(as_uid(self.uid, sh("mkdir", "-p", "--",
                                                posixpath.dirname(unit_path(self.home))))))
            cmds += write_file_cmds(unit_path(self.home), unit.encode(), mode=0o644,
                                    owner=self.uid)
        if not fact.get("linger"):
            cmds.append(Cmd(sh("loginctl", "enable-linger", self.user)))
        if changed or not (enabled and active and server):
            # the user's systemd instance (linger starts it, but not before this returns)
            cmds.append(Cmd(sh("systemctl", "start", f"user@{self.uid}.service")))
        if changed:
            cmds.append(Cmd(f"{systemctl} daemon-reload"))
        if not (enabled and active):
            cmds.append(Cmd(f"{systemctl} enable --now docker.service"))
        elif changed or not server or fact.get("before_mount"):
            cmds.append(Cmd(f"{systemctl} restart docker.service"))
        if cmds:
            cmds.append(self._wait(f"{systemctl} status docker.service"))
        return cmds

    def _detached_commands(self, script):
        rt = runtime_dir(self.uid)
        logdir = f"{self.home}/.local/state/tinsnip"
        log = f"{logdir}/dockerd.log"
        # setsid -f: a new session, not a child of this SSH session's shell, with every standard
        # stream away from it, so the command returns at once and the daemon outlives the
        # session. The log is opened by the user's own shell: root never opens a file in the
        # user's home, where the user could have put a link.
        start = sh("setsid", "-f", "env", "-i", f"HOME={self.home}", f"USER={self.user}",
                   f"LOGNAME={self.user}", f"PATH={SAFE_PATH}", f"XDG_RUNTIME_DIR={rt}",
                   "setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--init-groups",
                   "sh", "-c", 'exec "$0" >> "$1" 2>&1 < /dev/null', script, log)
        return [
            Cmd(sh("install", "-d", "-m", "700", "-o", self.uid, "-g", self.uid, rt)),
            Cmd(as_uid(self.uid, sh("mkdir", "-p", "--", logdir))),
            Cmd(f"{start} > /dev/null 2>&1 < /dev/null",
                f"start {script} for {self.user} in its own session"),
            self._wait(as_uid(self.uid, sh("tail", "-n", "5", "--", log))),
        ]

    def _wait(self, show_log: str):
        """Wait for the daemon to answer; on a time-out print the end of its log and fail."""
        check = as_user(self.user, self.uid, "docker version >/dev/null 2>&1")
        n = self.wait_seconds * 5
        return Cmd(f"i=0; until {check}; do i=$((i+1)); [ $i -ge {n} ] && "
                   f"{{ echo {q(f'rootless docker for {self.user} did not answer within {self.wait_seconds}s:')} >&2; "
                   f"{show_log} >&2; exit 1; }}; "
                   f"sleep 0.2; done",
                   f"wait for the daemon of {self.user} to answer")


def daemon_json_path(home: str) -> str:
    """The rootless daemon's config file (``$XDG_CONFIG_HOME/docker/daemon.json``)."""
    return f"{home}/.config/docker/daemon.json"


def daemon_json(config: dict) -> str:
    """``daemon.json`` text for ``config`` (stable: the same settings give the same bytes)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class DaemonConfig(Resource):
    """``~/.config/docker/daemon.json`` of ``user`` holds ``config`` (registry mirrors, insecure
    registries), written as the user. When it changes, the daemon is stopped if it runs (looked
    at when the change runs), so that ``machine.docker`` (which reads its facts after this
    step) starts it again with the new file; an unchanged file leaves the daemon alone. An
    empty ``config`` writes no file where there is none. Its fact is the file's alone, read as
    the user with the user's other facts."""

    user: str
    uid: int
    home: str
    config: str = "{}"  # the settings as JSON (daemon_json's text)

    @property
    def file(self) -> File:
        return File(daemon_json_path(self.home), self.config.encode(), mode=0o644,
                    owner=self.uid)

    def describe(self):
        keys = ", ".join(sorted(json.loads(self.config))) or "no settings"
        return f"daemon config {daemon_json_path(self.home)} ({keys})"

    def fact_as(self):
        return self.file.fact_as()

    def fact_command(self):
        return self.file.fact_command()

    def parse(self, out):
        return self.file.parse(out)

    def diff(self, out):
        return self.file.diff(out)

    def commands(self, fact):
        if not json.loads(self.config) and fact is None:
            return []
        writes = self.file.commands(fact)
        if not writes:
            return []
        folder = posixpath.dirname(daemon_json_path(self.home))
        return [Cmd(as_uid(self.uid, sh("mkdir", "-p", "--", folder)),
                    f"as UID {self.uid}: make {folder}"), *writes, self._stop()]

    def _stop(self) -> Cmd:
        """Stop the daemon if it runs (it reads daemon.json only when it starts): the user's
        systemd unit where PID 1 is systemd, else the detached daemon tinsnip started."""
        uid = q(str(self.uid))
        detached = (f"pkill -TERM -u {uid} -x dockerd; i=0; "
                    f"while pgrep -u {uid} -x rootlesskit >/dev/null; do i=$((i+1)); "
                    f"[ $i -ge 150 ] && pkill -KILL -u {uid} -x rootlesskit; "
                    f"[ $i -ge 200 ] && {{ echo {q(f'the daemon of {self.user} does not stop')} >&2; "
                    f"exit 1; }}; sleep 0.1; done; "
                    f"rm -f {q(runtime_dir(self.uid) + '/docker.sock')}")
        return Cmd(f"if pgrep -u {uid} -x dockerd >/dev/null; then {READ_INIT}; "
                   f"if [ \"$init\" = systemd ]; then {user_manager(self.user)} stop docker.service; "
                   f"else {detached}; fi; fi",
                   f"stop the daemon of {self.user} if it runs: it starts again with the new file")


@dataclass(frozen=True)
class DockerImage(Resource):
    """``image`` is present in the user's daemon, loaded from ``archive`` on the host if not."""

    user: str
    uid: int
    image: str
    archive: str

    def describe(self):
        return f"image {self.image} for {self.user}"

    def fact_command(self):
        return (as_user(self.user, self.uid, f"docker image inspect --format '{{{{.Id}}}}' {q(self.image)}")
                + " || echo missing")

    def parse(self, out):
        out = out.strip()
        return None if (not out or out.endswith("missing")) else out

    def commands(self, fact):
        if fact:
            return []
        missing = f"image {self.image} is missing and {self.archive} is not there to load it from"
        return [Cmd(f"test -r {q(self.archive)} || {{ echo {q(missing)} >&2; exit 1; }}",
                    f"check {self.archive}"),
                Cmd(as_user(self.user, self.uid, f"docker load -q -i {q(self.archive)}"))]


STAMP = ".tinsnip-deployed"
_ID = "'{{.Id}}'"
_DIGESTS = "'{{range .RepoDigests}}{{.}} {{end}}'"
#: ``docker image inspect -f`` word: an image's ID, then its repository digests
ID_DIGESTS = f"{_ID}' '{_DIGESTS}"


def registry_query(user: str, uid: int, ref_word: str) -> str:
    """Ask the user's daemon which digest the registry serves for an image reference, without
    pulling (``GET /distribution/REF/json`` through the daemon, so its registry mirrors and
    insecure registries apply). Prints the daemon's JSON answer on one line. ``ref_word`` is a
    shell word (quoted, or ``"$r"``)."""
    sock = q(runtime_dir(uid) + "/docker.sock")
    return (f"if command -v curl >/dev/null; then sudo -u {q(user)} curl -s --max-time 30 "
            f"--unix-socket {sock} \"http://localhost/distribution/\"{ref_word}\"/json\" "
            f"| tr -d '\\n'; else echo 'curl is not installed on the host'; fi")


def images_script(user: str, uid: int, refs, *, remote: bool) -> str:
    """For each reference: ``@@ref N``, ``local ID DIGEST...`` (empty when the daemon lacks
    it) and, with ``remote``, ``remote ANSWER`` (:func:`registry_query`)."""
    inspect = as_user(user, uid, f"docker image inspect -f {ID_DIGESTS}")
    lines = []
    for i, ref in enumerate(refs):
        lines.append(f"echo '@@ref {i}'; echo \"local $({inspect} {q(ref)} 2>/dev/null)\"")
        if remote and not img.pinned(ref):
            lines.append(f"echo \"remote $({registry_query(user, uid, q(ref))})\"")
    return "; ".join(lines) or "true"


def parse_images(out: str, refs) -> list[dict]:
    """:func:`images_script`'s output: per reference its local image ``id``, the ``digests``
    of its repository it holds, and the registry's digest (``remote``, or ``why`` not)."""
    facts = [{"id": "", "digests": [], "remote": "", "why": ""} for _ in refs]
    i = None
    for line in out.splitlines():
        if line.startswith("@@ref "):
            i = int(line.split()[1])
            continue
        if i is None:
            continue
        kind, _, rest = line.partition(" ")
        if kind == "local":
            words = rest.split()
            facts[i]["id"] = words[0] if words else ""
            facts[i]["digests"] = img.digests_of(refs[i], words[1:])
        elif kind == "remote":
            facts[i]["remote"], facts[i]["why"] = img.registry_digest(rest)
    return facts


def newer(fact: dict) -> bool:
    """The registry serves a digest the daemon does not hold for that repository."""
    return bool(fact["remote"]) and fact["remote"] not in fact["digests"]


@dataclass(frozen=True)
class ImagesPulled(Resource):
    """The user's daemon holds what the registry serves for each of ``refs`` (``--pull``).

    The registry is asked through the daemon (:func:`registry_query`); an image whose digest
    differs, or that the daemon lacks, is pulled. When the registry cannot be asked, the image
    is pulled anyway (the pull says why it fails)."""

    user: str
    uid: int
    refs: tuple

    def describe(self):
        return f"images {', '.join(self.refs)} as the registry serves them"

    def fact_command(self):
        return images_script(self.user, self.uid, self.refs, remote=True)

    def parse(self, out):
        return parse_images(out, self.refs)

    def commands(self, fact):
        cmds = []
        for ref, f in zip(self.refs, fact):
            if f["id"] and not newer(f) and (f["remote"] or img.pinned(ref)):
                continue
            was = (f["digests"] or [f["id"] or "nothing"])[0]
            to = f["remote"] or f"the registry's ({f['why'] or 'unknown'})"
            cmds.append(Cmd(as_user(self.user, self.uid, f"docker pull -q {q(ref)}") + " >/dev/null",
                            f"pull {ref} as {self.user}: {was[:19]} -> {to[:80]}"))
        return cmds


def running_script(project_word: str, docker: str = "docker") -> str:
    """One line per container of the Compose project ``project_word`` (a shell word: quoted, or
    ``"$p"``): ``service SERVICE REF ID DIGEST...`` (its compose service, the image reference
    it was started from, the image's ID and its repository digests)."""
    return (f"for c in $({docker} ps -q --filter label=com.docker.compose.project={project_word}); do "
            f"{docker} inspect -f '{{{{index .Config.Labels \"com.docker.compose.service\"}}}} "
            f"{{{{.Config.Image}}}} {{{{.Image}}}}' \"$c\" 2>/dev/null | "
            f"while read -r s r i; do echo \"service $s $r $i $({docker} image inspect -f "
            f"{_DIGESTS} \"$i\" 2>/dev/null)\"; done; done")


def hashes_script(project: str) -> str:
    """Two lines per running container of the Compose project: ``hash SERVICE CONFIG-HASH``
    (the configuration Compose started it with, its ``com.docker.compose.config-hash`` label)
    and ``container ID`` (its full ID, which a no-op deploy inspects directly)."""
    return (f"docker ps --no-trunc --filter label=com.docker.compose.project={q(project)} "
            "--filter label=com.docker.compose.oneoff=False --format "
            "'hash {{.Label \"com.docker.compose.service\"}} "
            "{{.Label \"com.docker.compose.config-hash\"}}{{println}}container {{.ID}}'")


def parse_stamp(text: str) -> dict:
    """The deploy stamp: the files' digest (first line), the tracked images' IDs (``image REF
    ID``), what each service ran (``service SERVICE REF ID DIGEST...``) and the configuration
    each was started with (``hash SERVICE CONFIG-HASH``). Its ``container ID`` lines are read
    by the host alone (:func:`service_fact`)."""
    lines = text.splitlines()
    stamp = {"files": lines[0].strip() if lines else "", "images": {}, "services": {},
             "hashes": {}}
    for line in lines[1:]:
        words = line.split()
        if len(words) == 3 and words[0] == "image":
            stamp["images"][words[1]] = words[2]
        elif len(words) == 3 and words[0] == "hash":
            stamp["hashes"][words[1]] = words[2]
        elif len(words) >= 4 and words[0] == "service":
            stamp["services"][words[1]] = {"ref": words[2], "id": words[3],
                                           "digests": words[4:]}
    return stamp


def image_lines(images) -> str:
    """Shell: the deploy stamp's ``image REF ID`` line of each tracked image reference, as the
    daemon holds it now (``-`` when it lacks it)."""
    return "".join(f"echo \"image {r} $(docker image inspect -f {_ID} {q(r)} 2>/dev/null "
                   f"|| echo -)\"; " for r in images)


def versions_script(service_dir: str, gens_dir: str, images: tuple = (), *,
                    kept_only: bool = False) -> str:
    """Bash printing ``live=`` (the running deploy's version), ``now=`` (the key of the
    tracked ``images`` as the daemon holds them now) and one ``gen=`` line per generation kept
    in ``gens_dir``, in any order (:func:`~.health.generations_fact`); ``kept_only``: the
    ``gen=`` lines alone.

    A key is the first 12 hex digits of the SHA-256 of the ``image`` lines, sorted bytewise:
    two processes each (``sort``, ``sha256sum``); the shell reads the files and picks the lines
    itself."""
    d, g = q(service_dir), q(gens_dir)
    keyed = ("k() { h=$(while IFS= read -r l || [ -n \"$l\" ]; do case $l in 'image '*) "
             "printf '%s\\n' \"$l\";; esac; l=; done | LC_ALL=C sort | sha256sum); "
             "printf '%.12s' \"$h\"; }; ")
    first = "{ IFS= read -r %s < %s; } 2>/dev/null; "
    version = (keyed + "v() { s=; " + first % ("s", '"$1"')
               + "[ -z \"$s\" ] || echo \"$s+$(k < \"$1\")\"; }; ")
    now = f"{{ {image_lines(images)}true; }}"
    return (version + ("" if kept_only else f"echo \"live=$(v {d}/{STAMP})\"; "
                                            f"echo \"now=$({now} | k)\"; ")
            + f"for n in {g}/*; do n=${{n##*/}}; case $n in ''|*[!0-9]*) continue;; esac; "
            "x= y=; " + first % ("x", f"{g}/\"$n\"/next") + first % ("y", f"{g}/\"$n\"/saved")
            + f"echo \"gen=$n stamp=$(v {g}/$n/files/{STAMP}) next=$x saved=$y\"; done")


#: ``docker inspect -f`` of images and containers at once: an image's ID; a container's
#: compose service, state and config hash (the words of :func:`service_fact`'s ``docker ps``).
#: ``index . "State"`` fails on the typed image, and the CLI then reads the object's JSON.
_OBJECT = ("'{{if index . \"State\"}}{{index .Config.Labels \"com.docker.compose.service\"}} "
           "{{.State.Status}} {{index .Config.Labels \"com.docker.compose.config-hash\"}}"
           "{{else}}{{.Id}}{{end}}'")


def unambiguous(ref: str) -> str:
    """``ref`` as no container can be named: a bare name gets its implied ``:latest``."""
    return ref if any(c in ref for c in "/:@") else ref + ":latest"


def stamped_objects(service_dir: str, images) -> str:
    """Bash setting ``stamp`` (the deploy stamp's lines, each ended by a newline), ``named``
    (the stamp names its services), and ``fast`` when one ``docker inspect`` of the tracked
    ``images`` and the containers the stamp recorded found every one of them, each container
    running: ``L`` then holds the images' IDs, in order, then a ``SERVICE STATE CONFIG-HASH``
    line per container. Else (a container gone or stopped, an image missing, a stamp from an
    older tinsnip) :func:`service_fact` asks ``docker ps`` and each image, as before.

    One Docker client instead of two or more: each costs about 20 ms of the host's CPU."""
    n = len(images)
    refs = " ".join(q(unambiguous(r)) for r in images)
    return (f"named= cids= nc=0 fast= stamp=; set -f; {{ while IFS= read -r l || [ -n \"$l\" ]; "
            "do stamp=\"$stamp$l\"$'\\n'; set -- $l; case $1 in "
            "hash|service) named=1;; container) case $2 in *[!0-9a-f]*|'') ;; "
            "*) cids=\"$cids $2\"; nc=$((nc + 1));; esac;; esac; l=; "
            f"done < {q(service_dir + '/' + STAMP)}; }} 2>/dev/null; set +f; "
            f"if [ -n \"$cids\" ] && out=$(docker inspect -f {_OBJECT} {refs} $cids "
            "2>/dev/null); then mapfile -t L <<< \"$out\"; "
            f"[ ${{#L[@]}} -eq $(({n} + nc)) ] && fast=1; "
            f"for l in \"${{L[@]:{n}}}\"; do read -r s st h <<< \"$l\"; "
            "[ \"$st\" = running ] || fast=; done; fi; ")


def _image_lines_of(images) -> str:
    """A shell word: :func:`image_lines`' text from the IDs :func:`stamped_objects` read."""
    return "\"" + "\"$'\\n'\"".join(f"image {r} ${{L[{i}]}}" for i, r in enumerate(images)) + "\""


def service_fact(user: str, uid: int, mount_point: str, service_dir: str, gens_dir: str,
                 project: str, images: tuple) -> str:
    """What a deploy reads of a running Compose project, in one shell of its user: the
    services (Compose asked only when the deploy stamp names none), the stamp, the containers,
    the tracked images' IDs (``image REF ID`` lines, ``-`` for one the daemon lacks) and,
    after ``@@versions``, :func:`versions_script`'s lines of the kept generations (the
    running version and ``now`` are keyed by the reader, from the stamp and the image lines:
    :meth:`~.health.SaveGeneration.parse`).

    :class:`ComposeUp` and :class:`~.health.SaveGeneration` both read it, with the same
    command: the facts script runs it once for both (:func:`~.base.facts_script`)."""
    ask_compose = compose_pattern(mount_point, service_dir, "config --services")
    ps = (f"docker ps -a --filter label=com.docker.compose.project={q(project)} "
          "--filter label=com.docker.compose.oneoff=False --format "
          "'{{.Label \"com.docker.compose.service\"}} {{.State}} "
          "{{.Label \"com.docker.compose.config-hash\"}}'")
    n = len(images)
    script = (f"{stamped_objects(service_dir, images)}"
              f"if [ -n \"$fast\" ]; then imgs={_image_lines_of(images)}; "
              f"else imgs=$({image_lines(images)}true); fi; "
              f"if [ -n \"$named\" ]; then cd {q(service_dir)}; "
              f"else {ask_compose}; fi && echo @@stamp && printf '%s' \"$stamp\"; "
              f"echo @@ps && if [ -n \"$fast\" ]; then printf '%s\\n' \"${{L[@]:{n}}}\"; "
              f"else {ps}; fi; echo @@images; printf '%s\\n' \"$imgs\"; "
              + (f"echo @@versions; {versions_script(service_dir, gens_dir, kept_only=True)}; "
                 if gens_dir else "") + "true")
    return as_user(user, uid, f"bash -c {q(script)}")


SECTIONS = ("stamp", "ps", "images", "versions")  # :func:`service_fact`'s, after ``services``


def service_sections(out: str) -> dict[str, str]:
    """:func:`service_fact`'s output by section, each its text as printed: ``services``
    (Compose's answer, when it was asked), then the :data:`SECTIONS`, each after its ``@@NAME``
    line. Lines are split at newlines only: a carriage return stays in its line, as in the
    keys the host computes."""
    parts, name = {"services": [], **{n: [] for n in SECTIONS}}, "services"
    for line in out.split("\n"):
        marker = line.strip()
        if marker.startswith("@@") and marker[2:] in SECTIONS:
            name = marker[2:]
        else:
            parts[name].append(line)
    return {n: "\n".join(lines) for n, lines in parts.items()}


@dataclass(frozen=True)
class ComposeUp(Resource):
    """The Compose project in ``service_dir`` runs with its current files and images.

    ``stamp`` is a digest of every file the project is started from (compose file, .env,
    machine.env, and the build context of a service from its own folder). After a successful
    ``docker compose up -d`` (the seed's exact pattern) the deploy stamp is written beside the
    compose file: that digest, the ID of each tracked image (``images``: what is pulled, and
    the bases of what is built) and the image each service runs. The project is up to date when
    the digest matches, no tracked image changed since (``service.deploy --pull`` pulled a new
    one) and every service the stamp says ran after the deploy still has a running container.
    ``up -d`` itself recreates only what changed; with ``build`` it rebuilds with the classic
    builder.

    Its fact starts Compose (``config --services``, about 0.1 s of the host's CPU) only for a
    stamp that names no service (written by an older tinsnip, or none): the stamp's services
    are the ones Compose runs for the files the digest stands for.
    """

    user: str
    uid: int
    mount_point: str
    service_dir: str
    project: str
    stamp: str = ""
    build: bool = False  # the project builds images: `up -d --build` with the classic builder
    images: tuple = ()  # tracked image references (core/images.py)
    gens_dir: str = ""  # where its generations are kept: the fact it shares with SaveGeneration

    def describe(self):
        return f"compose project {self.project} up as {self.user}"

    def fact_command(self):
        return service_fact(self.user, self.uid, self.mount_point, self.service_dir,
                            self.gens_dir, self.project, self.images)

    def parse(self, out):
        lines = {name: [l.strip() for l in text.splitlines() if l.strip()]
                 for name, text in service_sections(out).items()}
        fact = {"services": lines["services"], "stamp": parse_stamp("\n".join(lines["stamp"])),
                "running": set(), "images": {}, "hashes": {}}
        for words in map(str.split, lines["images"]):
            if len(words) == 3 and words[0] == "image":
                fact["images"][words[1]] = "" if words[2] == "-" else words[2]
        for parts in map(str.split, lines["ps"]):
            if len(parts) >= 2 and parts[1] == "running":
                fact["running"].add(parts[0])
                if len(parts) == 3:
                    fact["hashes"][parts[0]] = parts[2]
        if not fact["services"]:  # Compose was not asked: the services the deploy ran
            fact["services"] = list(dict.fromkeys([*fact["stamp"]["hashes"],
                                                   *fact["stamp"]["services"]]))
        return fact

    def moved(self, fact) -> list[str]:
        """Tracked images whose ID differs from the one the stamp recorded."""
        recorded = fact["stamp"]["images"]
        return [r for r in self.images
                if r in recorded and fact["images"].get(r, "") != recorded[r]]

    def drifted(self, fact) -> list[str]:
        """Services running with another configuration than the deploy started them with
        (the project was changed and started again by hand)."""
        recorded = fact["stamp"].get("hashes", {})
        return [s for s in fact["services"]
                if s in recorded and s in fact["hashes"] and fact["hashes"][s] != recorded[s]]

    def commands(self, fact):
        moved, drifted = self.moved(fact), self.drifted(fact)
        if (fact["services"] and fact["stamp"]["files"] == self.stamp and not moved
                and not drifted and all(s in fact["running"] for s in fact["services"])):
            return []
        action = "up -d --build" if self.build else "up -d"
        why = f" (new image: {', '.join(moved)})" if moved else ""
        why += (f" (started by hand with another configuration: {', '.join(drifted)})"
                if drifted else "")
        return [Cmd(compose_as(self.user, self.mount_point, self.service_dir, action,
                               build=self.build),
                    f"as {self.user}: docker compose {action} in {self.service_dir}{why}"),
                self._record()]

    def _record(self) -> Cmd:
        """Write the deploy stamp as the user, through a new temporary file."""
        ids = image_lines(self.images)
        script = (f"cd {q(self.service_dir)} && t=$(mktemp {STAMP}.XXXXXXXXXX) && "
                  f"{{ {{ echo {q(self.stamp)}; {ids}{running_script(q(self.project))}; "
                  f"{hashes_script(self.project)}; }} > \"$t\" "
                  f"&& chmod 640 \"$t\" && mv -fT \"$t\" {STAMP} || {{ rm -f \"$t\"; false; }}; }}")
        return Cmd(as_user(self.user, self.uid, f"sh -c {q(script)}"),
                   f"as {self.user}: record {self.stamp[:12]} and the image digests in "
                   f"{self.service_dir}/{STAMP}")


CONTEXT_STAMP = ".tinsnip-context"
#: Files in a service folder that the deploy writes itself; a new context keeps them.
KEPT = (".env", "docker-compose.yml", STAMP)


@dataclass(frozen=True)
class ContextTree(Resource):
    """The service folder holds exactly the build context whose digest is ``digest``.

    A new context is unpacked beside the folder as the machine user, the files the deploy
    writes itself are carried over, and the two folders are swapped, so a failure leaves the
    old folder whole. ``pack()`` makes the context as a gzip tar, only when it is uploaded.
    """

    uid: int
    path: str
    digest: str
    pack: Callable[[], bytes]

    def describe(self):
        return f"build context {self.digest[:12]} in {self.path}"

    def fact_command(self):
        # read as the user: the folder is the user's, and root follows no link it did not make
        return as_uid(self.uid, f"cat {q(self.path + '/' + CONTEXT_STAMP)} 2>/dev/null "
                                "|| echo missing")

    def parse(self, out):
        return out.strip()

    def commands(self, fact):
        if fact == self.digest:
            return []
        d, new, old = q(self.path), q(self.path + ".tinsnip-new"), q(self.path + ".tinsnip-old")
        kept = " ".join(q(f) for f in KEPT)
        swap = (f"for f in {kept}; do if [ -e {d}/\"$f\" ]; then mv {d}/\"$f\" {new}/; fi; done; "
                f"echo {q(self.digest)} > {new}/{CONTEXT_STAMP} && chmod 750 {new} && "
                f"if [ -d {d} ]; then mv {d} {old}; fi && mv {new} {d} && rm -rf {old}")
        data = self.pack()
        return [
            Cmd(as_uid(self.uid, f"rm -rf {new} {old} && mkdir -p {new} && "
                                 f"tar -xzf - --no-same-owner -C {new}"),
                f"unpack the build context ({len(data)} bytes) into {self.path}.tinsnip-new "
                f"as UID {self.uid}", data=data),
            Cmd(as_uid(self.uid, swap), f"swap it in for {self.path}, keeping {', '.join(KEPT)}"),
        ]


def project_filter(project: str) -> str:
    return f"--filter label=com.docker.compose.project={q(project)}"


@dataclass(frozen=True)
class ComposeDown(Resource):
    """No container of the Compose project ``project`` is left (``compose down`` the seed's way
    while its folder is there, else the containers and network are removed directly)."""

    user: str
    uid: int
    mount_point: str
    service_dir: str
    project: str

    def describe(self):
        return f"compose project {self.project} down"

    def fact_command(self):
        ps = as_user(self.user, self.uid, f"docker ps -aq {project_filter(self.project)}")
        # the seed's way only with files tinsnip wrote (read as the user): else directly
        files = (f"[ -f {q(self.service_dir + '/docker-compose.yml')} ] && "
                 + seed_env(self.mount_point, self.service_dir) + " && echo files")
        return (f"sudo -u {q(self.user)} bash -c {q(files)} 2>/dev/null; "
                f"{has_socket(self.uid)} && {ps}")

    def parse(self, out):
        lines = out.split()
        return {"files": "files" in lines, "containers": [l for l in lines if l != "files"]}

    def commands(self, fact):
        if not fact["containers"]:
            return []
        if fact["files"]:
            return [Cmd(compose_as(self.user, self.mount_point, self.service_dir,
                                   "down -t 5 --remove-orphans"))]
        ids = " ".join(q(c) for c in fact["containers"])
        return [Cmd(as_user(self.user, self.uid, f"docker rm -f {ids}") + " >/dev/null"),
                Cmd(as_user(self.user, self.uid, f"docker network prune -f {project_filter(self.project)}")
                    + " >/dev/null")]


@dataclass(frozen=True)
class DockerStopped(Resource):
    """The rootless daemon of ``user`` is stopped and nothing of the user runs any more: no
    process of its UID or of its subordinate UIDs, where its containers run (they outlive a
    daemon that was killed). What still runs after SIGKILL is named and the step fails."""

    user: str
    uid: int

    def describe(self):
        lo, hi = subid_range(self.uid)
        return (f"rootless docker of {self.user} stopped; no process of UID {self.uid} or of "
                f"its subordinate UIDs {lo}-{hi} left")

    def fact_command(self):
        u = q(self.user)
        return (f"{READ_INIT}; echo init=$init; [ -e /var/lib/systemd/linger/{u} ] && echo linger=yes; "
                f"echo procs=$({pids_of(self.uid)} | wc -l); "
                f"[ -d {q(runtime_dir(self.uid))} ] && echo runtime=yes")

    def parse(self, out):
        return dict(l.split("=", 1) for l in out.split() if "=" in l)

    def commands(self, fact):
        cmds = []
        if fact.get("init") == "systemd" and fact.get("linger"):
            cmds += [Cmd(f"{user_manager(self.user)} disable --now docker.service || true"),
                     Cmd(sh("loginctl", "disable-linger", self.user))]
        if int(fact.get("procs") or 0) or cmds:
            cmds.append(Cmd(end_processes(self.uid, self.user),
                            f"end every process of {self.user} and of its subordinate UIDs"))
        if fact.get("runtime"):
            cmds.append(Cmd(sh("rm", "-rf", "--one-file-system", runtime_dir(self.uid))))
        return cmds


@dataclass(frozen=True)
class NoContainers(Resource):
    """The rootless daemon of ``user`` (when it runs) has no container left."""

    user: str
    uid: int

    def describe(self):
        return f"no containers of {self.user}"

    def fact_command(self):
        return f"{has_socket(self.uid)} && " + as_user(self.user, self.uid, "docker ps -aq")

    def parse(self, out):
        return out.split()

    def commands(self, fact):
        if not fact:
            return []
        ids = " ".join(q(c) for c in fact)
        return [Cmd(as_user(self.user, self.uid, f"docker rm -f {ids}") + " >/dev/null",
                    f"remove {len(fact)} container(s) of {self.user}")]
