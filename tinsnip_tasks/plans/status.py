"""The seed's Testing Checklist for a machine-environment: one script gathers the facts on the
host, :func:`evaluate` (pure) turns them into pass/fail lines."""
from __future__ import annotations

from ..core.smep import Smep
from ..errors import FactError
from ..ops.base import MARK, READ_INIT, Host, q, split_facts
from ..ops.forward import LIST_COMMAND, parse_rules
from ..ops.docker import (ID_DIGESTS, STAMP, as_user, compose_pattern, docker_host,
                          newer, registry_query)
from ..ops.gate import GATE_MODE, gate_dir, nfs_dir, sums_file, user_manager
from ..ops.resources import as_uid
from ..core import images as img
from .machine import home

ITEMS = (
    ("interpolation", "compose interpolation gives no empty values"),
    ("daemon", "the rootless Docker daemon answers"),
    ("environment", "containers have their TIN_* environment"),
    ("writable", "NFS-backed paths are writable (by the user and inside containers)"),
    ("ports", "published ports are bound and within the allocated ten"),
    ("restarting", "no container is restarting or crash-looping"),
    ("mount", "the NFS export is mounted (nosuid,nodev)"),
    ("gate", "only the machine user and root can reach the mount"),
    ("docker_host", "DOCKER_HOST in machine.env names the user's own socket"),
    ("xdg", "no XDG_DATA/CONFIG/STATE_HOME in the daemon's environment"),
    # only where PID 1 is systemd: the seed's history of the rootless daemon as a user unit
    ("linger", "linger is on (the user's systemd, and so the daemon, starts at boot)"),
    ("unit", "the docker.service user unit is enabled"),
    ("session", "the daemon runs from its user unit, not from a login session"),
)
SYSTEMD_ONLY = ("linger", "unit", "session")
#: The one item of a machine-environment whose user does not exist on the host (never set up).
NO_USER = ("user", "the machine user exists (machine.setup made it)")
#: What ``docker inspect`` tells of each container, for the report (one word each).
IMAGE_FIELDS = ("name", "image", "image_id", "health", "started", "project")
IMAGE_FORMAT = ("{{.Name}} {{.Config.Image}} {{.Image}} "
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} "
                "{{.State.StartedAt}} "
                '{{with index .Config.Labels "com.docker.compose.project"}}{{.}}{{else}}-{{end}}')
#: What one ``docker inspect`` of all the user's containers prints per container: the lines
#: ``@container``, ``@image`` and ``@env`` (the TIN_* values a running container's processes
#: get), one ``@port`` per host port it publishes, ``@mounts`` (its name and mount
#: destinations, for the write probe) and, when it runs in a Compose project, ``@run`` (project,
#: service, image reference and image ID, for the image lines). One call instead of five per
#: container: each start of the docker CLI is most of the checklist's time on a slow host.
_ENV_VALUE = ('{{{{range .Config.Env}}}}{{{{$kv := split . "="}}}}'
              '{{{{if and (eq (len $kv) 2) (eq (index $kv 0) "{}")}}}} {{{{index $kv 1}}}}'
              '{{{{end}}}}{{{{end}}}}')
CONTAINER_FORMAT = (
    "@container {{.Name}} {{.State.Status}} {{.RestartCount}}{{println}}"
    "@image " + IMAGE_FORMAT + "{{println}}"
    "@env {{.Name}}{{if .State.Running}}" + _ENV_VALUE.format("TIN_SERVICE_UID")
    + _ENV_VALUE.format("TIN_PORT_0") + "{{end}}{{println}}"
    "{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}"
    "@port {{$.Name}} {{.HostPort}}{{println}}{{end}}{{end}}"
    "@mounts {{.Name}}{{range .Mounts}} {{.Destination}}{{end}}{{println}}"
    '{{if .State.Running}}{{with index .Config.Labels "com.docker.compose.project"}}'
    '@run {{.}} {{index $.Config.Labels "com.docker.compose.service"}} {{$.Config.Image}} '
    "{{$.Image}}{{println}}{{end}}{{end}}")
#: Run in a container with its name and mount destinations as arguments: can it write in each?
WRITE_PROBE = ('n=$0; for d; do if touch "$d/.tinsnip-probe" 2>/dev/null && '
               'rm -f "$d/.tinsnip-probe"; then echo "@write $n:$d 0"; '
               'else echo "@write $n:$d 1"; fi; done')
XDG_KEPT_AWAY = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME")
#: a UID and GID no machine-environment has (``nobody``'s): whoever it is must not pass the gate
OUTSIDER = 65534


def user_script(smep: Smep) -> str:
    """The part read on the mount and in the user's home: a bash script run as the machine
    user (root reads nothing there by path), ``$1`` the mount point."""
    compose = compose_pattern('"$1"', '"${dir%/}"', "config -q", words=True,
                              sums=sums_file(smep.mount_point))
    wants = q(f"{home(smep)}/.config/systemd/user/default.target.wants/docker.service")
    return f"""
echo "@dockerhost $(sed -n 's/^DOCKER_HOST=//p' "$1"/.machine/machine.env 2>/dev/null | tail -n 1)"
[ -L {wants} ] && echo "@enabled 1" || echo "@enabled 0"
for dir in "$1"/service/*/; do
  [ -f "$dir/docker-compose.yml" ] || continue
  err=$( ( {compose} ) 2>&1 >/dev/null); rc=$?
  printf '@compose\\t%s\\t%s\\t%s\\n' "$(basename "$dir")" "$rc" "$(echo "$err" | tr '\\n\\t' '  ')"
  printf '@deployed\\t%s\\t%s\\n' "$(basename "$dir")" "$(stat -c %Y "$dir/{STAMP}" 2>/dev/null || echo 0)"
done
for f in state data config; do
  if touch "$1/$f/.tinsnip-probe" 2>/dev/null && rm -f "$1/$f/.tinsnip-probe"
  then echo "@write user:$f 0"; else echo "@write user:$f 1"; fi
done
"""


def script(smep: Smep) -> str:
    """A POSIX shell script, run as root on the machine host, printing ``@kind ...`` lines."""
    u, mp = q(smep.user), q(smep.mount_point)
    d = as_user(smep.user, smep.uid, "docker")
    xdg = "|".join(XDG_KEPT_AWAY)
    gate, where = q(gate_dir(smep.mount_point)), q(nfs_dir(smep.mount_point))
    outsider = as_uid(OUTSIDER, f"cd {mp}")
    return f"""
info=
if ! id -u {u} >/dev/null 2>&1; then echo "@nouser"; else
{READ_INIT}; echo "@init $init"
echo "@mount $(awk -v m={where} '$2 == m {{print $1, $3, $4}}' /proc/mounts | tail -n 1)"
echo "@oldmount $(awk -v m={mp} '$2 == m {{print $1}}' /proc/mounts | tail -n 1)"
echo "@gate $(stat -c '%u %g %a %F' {gate} 2>/dev/null | tr ' ' _)"
if [ -L {mp} ]; then echo "@link $(readlink {mp})"; else echo "@link"; fi
{outsider} 2>/dev/null && echo "@outsider open" || echo "@outsider closed"
if [ "$init" = systemd ]; then
  [ -e /var/lib/systemd/linger/{u} ] && echo "@linger 1" || echo "@linger 0"
fi
sudo -u {u} bash -c {q(user_script(smep))} _ {mp}
for pid in $(pgrep -u {smep.uid} -x dockerd); do
  echo "@dockerd $pid $(sed -n 's/^[0-9]*:name=systemd://p; s/^0:://p' /proc/$pid/cgroup | head -n 1)"
  echo "@daemonenv $pid $(tr '\\0' '\\n' < /proc/$pid/environ | grep -E '^({xdg})=' | tr '\\n' ' ')"
done
v=$({d} version --format '{{{{.Server.Version}}}}' 2>&1); echo "@daemon $? $(echo $v | tr '\\n' ' ')"
{containers_script(d)}
{images_script(smep)}
for p in $(ss -ltnH 2>/dev/null | awk '{{print $4}}' | sed 's/.*://' | sort -u); do echo "@listen $p"; done
fi
true
"""


def containers_script(d: str) -> str:
    """The containers' part of :func:`script` (``d``: the docker command as the machine user):
    one ``docker inspect`` of them all (:data:`CONTAINER_FORMAT`, kept in ``$info`` for
    :func:`images_script`), then per container with mounts one ``docker exec`` trying each
    (a container that does not run, or has no ``sh``, fails them all). A container removed
    meanwhile is left out, not reported half."""
    return f"""ids=$({d} ps -aq 2>/dev/null)
info=$([ -n "$ids" ] && {d} inspect -f {q(CONTAINER_FORMAT)} $ids 2>/dev/null)
echo "$info" | grep -v -e '^@mounts ' -e '^@run '
echo "$info" | sed -n 's/^@mounts //p' | while read -r n dests; do
  [ -n "$dests" ] || continue
  {d} exec "${{n#/}}" sh -c {q(WRITE_PROBE)} "$n" $dests </dev/null 2>/dev/null \\
    || for x in $dests; do echo "@write $n:$x 1"; done
done"""


def parse(out: str) -> dict:
    """The script's lines as data. Raises ValueError on a line it cannot read."""
    facts = {"daemon": None, "compose": [], "write": [], "container": [], "env": [],
             "port": [], "listen": set(), "init": "", "mount": None, "dockerhost": "",
             "linger": None, "enabled": None, "dockerd": [], "daemonenv": {}, "image": [],
             "deployed": {}, "nouser": False,
             "options": [], "oldmount": "", "gate": None, "link": "", "outsider": ""}
    for line in out.splitlines():
        if line.startswith("@compose\t"):  # tab-separated: a folder name may hold spaces
            _, name, rc, err = (line.split("\t", 3) + [""])[:4]
            facts["compose"].append((name, int(rc), err.strip()))
            continue
        if line.startswith("@deployed\t"):
            _, name, when = (line.split("\t", 2) + [""])[:3]
            facts["deployed"][name] = int(when) if when.strip().isdigit() else 0
            continue
        if not line.startswith("@"):
            continue
        kind, _, rest = line[1:].partition(" ")
        parts = rest.split()
        if kind == "nouser":
            facts["nouser"] = True
        elif kind == "daemon":
            facts["daemon"] = (parts[0] == "0", " ".join(parts[1:]))
        elif kind == "write" and len(parts) == 2:
            facts["write"].append((parts[0], parts[1] == "0"))
        elif kind == "container" and len(parts) == 3:
            facts["container"].append((parts[0].lstrip("/"), parts[1], int(parts[2])))
        elif kind == "env" and parts:
            facts["env"].append((parts[0].lstrip("/"), parts[1:]))
        elif kind == "image" and len(parts) == len(IMAGE_FIELDS):
            facts["image"].append(dict(zip(IMAGE_FIELDS, parts), name=parts[0].lstrip("/")))
        elif kind == "port" and len(parts) == 2:
            port = (parts[0].lstrip("/"), int(parts[1]))
            if port not in facts["port"]:  # published on IPv4 and IPv6: one port
                facts["port"].append(port)
        elif kind == "listen" and parts:
            facts["listen"].add(int(parts[0]))
        elif kind in ("init", "dockerhost"):
            facts[kind] = rest.strip()
        elif kind == "mount":
            facts["mount"] = tuple(parts[:2]) if len(parts) >= 2 else None
            facts["options"] = parts[2].split(",") if len(parts) > 2 else []
        elif kind in ("oldmount", "link", "outsider"):
            facts[kind] = rest.strip()
        elif kind == "gate":
            facts["gate"] = tuple(rest.strip().split("_", 3)) if rest.strip() else None
        elif kind in ("linger", "enabled") and parts:
            facts[kind] = parts[0] == "1"
        elif kind == "dockerd" and parts:
            facts["dockerd"].append((int(parts[0]), parts[1] if len(parts) > 1 else ""))
        elif kind == "daemonenv" and parts:
            facts["daemonenv"][int(parts[0])] = parts[1:]
    return facts


def evaluate(facts: dict, smep: Smep, program: str = "tinsnip") -> list[tuple[str, bool, str]]:
    """(item, passed, detail) for each checklist item; fixes name ``program`` (the command
    running: tinsnip, inv or fab). A machine-environment whose user does not exist is one
    failed item."""
    if facts.get("nouser"):
        return [(NO_USER[0], False, f"{smep.user} does not exist on this host: this "
                 f"machine-environment is not set up; run `{program} machine.setup "
                 f"--machine {smep.machine} --env {smep.env}`")]
    out = []
    bad = [f"{n}: {err or 'exit ' + str(rc)}" for n, rc, err in facts["compose"]
           if rc != 0 or "is not set" in err]
    names = ", ".join(n for n, _, _ in facts["compose"]) or "no services deployed"
    out.append(("interpolation", not bad, "; ".join(bad) or names))
    up, detail = facts["daemon"] or (False, "no answer")
    out.append(("daemon", up, f"server {detail}" if up else detail))
    want = [str(smep.uid), str(smep.ports[0])]
    missing = [n for n, vals in facts["env"] if vals != want]
    # no containers is a failure only where services are deployed
    out.append(("environment", (bool(facts["env"]) or not facts["compose"]) and not missing,
                f"missing or wrong in {', '.join(missing)}" if missing
                else (f"{len(facts['env'])} container(s)" if facts["env"] else
                      "no containers" + ("" if facts["compose"] else ", no services deployed"))))
    failed = [w for w, ok in facts["write"] if not ok]
    out.append(("writable", bool(facts["write"]) and not failed,
                f"not writable: {', '.join(failed)}" if failed else f"{len(facts['write'])} paths"))
    allowed = set(smep.ports)
    stray = [f"{n}:{p}" for n, p in facts["port"] if p not in allowed]
    unbound = [f"{n}:{p}" for n, p in facts["port"] if p not in facts["listen"]]
    ok = not stray and not unbound
    out.append(("ports", ok, (f"outside {smep.ports[0]}..{smep.ports[-1]}: {', '.join(stray)} "
                              if stray else "") + (f"not listening: {', '.join(unbound)}" if unbound else "")
                or " ".join(f"{n}:{p}" for n, p in facts["port"]) or "no published ports"))
    looping = [f"{n} ({s}, {r} restarts)" for n, s, r in facts["container"]
               if s == "restarting" or r > 0]
    out.append(("restarting", not looping, ", ".join(looping) or
                f"{len(facts['container'])} container(s) steady"))
    out += _host_items(facts, smep, program)
    return out


def _host_items(facts: dict, smep: Smep, program: str = "tinsnip") -> list[tuple[str, bool, str]]:
    """The machine host's side: mount, DOCKER_HOST, the daemon's environment, and where PID 1
    is systemd the user unit with linger. Each failure says how to fix it."""
    m, e, u = smep.machine, smep.env, smep.user
    task = f"--machine {m} --env {e}"
    systemctl = user_manager(u)
    out = []
    mount, where = facts["mount"], nfs_dir(smep.mount_point)
    fs_ok = bool(mount) and mount[1] in ("nfs", "nfs4", "fuse.nfs")
    unsafe = [o for o in ("nosuid", "nodev") if o not in facts["options"]]
    if fs_ok and not unsafe:
        detail = f"{mount[0]} ({mount[1]}, nosuid,nodev) on {where}"
    elif fs_ok:
        detail = (f"{mount[0]} ({mount[1]}) on {where} is mounted without "
                  f"{' and '.join(unsafe)}: run `umount {where}` and `{program} machine.mount {task}`")
    else:
        detail = ((f"{where} has {mount[0]} ({mount[1]}), not the NFS export" if mount
                   else f"nothing is mounted on {smep.mount_point}")
                  + f": run `{program} machine.mount {task}` (or `mount {where}`)")
    out.append(("mount", fs_ok and not unsafe, detail))
    out.append(_gate_item(facts, smep, task, program))
    want = docker_host(smep.uid)
    got = facts["dockerhost"]
    out.append(("docker_host", got == want,
                f"DOCKER_HOST={got}" if got == want else
                (f"machine.env sets DOCKER_HOST={got or '(nothing)'}, not {want}, the socket of "
                 f"{u}'s own daemon: run `{program} machine.env {task}`")))
    daemons = facts["dockerd"]
    leaks = {pid: env for pid, env in facts["daemonenv"].items() if env}
    out.append(("xdg", not leaks,
                "; ".join(f"dockerd (pid {pid}) has {' '.join(env)}" for pid, env in leaks.items())
                + (f": the daemon then keeps its data on the NFS mount; unset them where it is "
                   f"started (`{program} machine.docker {task}` rewrites the unit, which unsets them) "
                   f"and restart it" if leaks else "")
                or (f"{len(daemons)} dockerd process(es) clean" if daemons
                    else "no dockerd process to check")))
    if facts["init"] != "systemd":
        return out
    out.append(("linger", bool(facts["linger"]),
                "on" if facts["linger"] else
                f"linger is off for {u}: its daemon stops with its last session and does not "
                f"start at boot: run `loginctl enable-linger {u}` (or `{program} machine.docker {task}`)"))
    out.append(("unit", bool(facts["enabled"]),
                "enabled (default.target)" if facts["enabled"] else
                f"docker.service is not enabled for {u}, so it does not start at boot: run "
                f"`{systemctl} enable --now docker.service` (or `{program} machine.docker {task}`)"))
    stray = [(pid, cg) for pid, cg in daemons if not cg.endswith("/docker.service")]
    out.append(("session", not stray,
                "; ".join(f"dockerd (pid {pid}) runs in {cg or 'no cgroup'}" for pid, cg in stray)
                + (f", not in {u}'s docker.service: it was started from a login session and ends "
                   f"with it; stop it (`pkill -u {u} -x rootlesskit`) and run "
                   f"`{systemctl} enable --now docker.service` (or `{program} machine.docker {task}`)"
                   if stray else "")
                or (f"dockerd in {daemons[0][1]}" if daemons else "no dockerd process to check")))
    return out


def _gate_item(facts: dict, smep: Smep, task: str,
               program: str = "tinsnip") -> tuple[str, bool, str]:
    """The gate: its folder root's with the user's group and mode 0710, ``/mnt/M-E`` a link to
    the mount behind it, nothing mounted the old way, and an outsider (UID 65534) refused."""
    gate, where = gate_dir(smep.mount_point), nfs_dir(smep.mount_point)
    want = ("0", str(smep.uid), f"{GATE_MODE:o}", "directory")
    wrong = []
    if facts["oldmount"]:
        wrong.append(f"{facts['oldmount']} is still mounted directly on {smep.mount_point}, "
                     "where every local user reaches it")
    if facts["gate"] != want:
        got = ("missing" if not facts["gate"] else
               "owner {}:{}, mode {}, a {}".format(*facts["gate"]) if len(facts["gate"]) == 4
               else " ".join(facts["gate"]))
        wrong.append(f"{gate} is {got}, not a folder of 0:{smep.uid} with mode {GATE_MODE:04o}")
    if facts["link"] != where:
        wrong.append(f"{smep.mount_point} is " + (f"a link to {facts['link']}" if facts["link"]
                                                  else "not a link") + f", not a link to {where}")
    if facts["outsider"] != "closed":
        wrong.append(f"UID {OUTSIDER} can enter {smep.mount_point}")
    if wrong:
        return ("gate", False, "; ".join(wrong) + f": run `{program} machine.setup {task}` (it "
                "converts a host set up before the gate)")
    return ("gate", True, f"{smep.mount_point} -> {where}, behind {gate} (0:{smep.uid} "
                          f"{GATE_MODE:04o}); UID {OUTSIDER} refused")


def images_script(smep: Smep) -> str:
    """Per running container of a Compose project (the ``@run`` lines of ``$info``, see
    :func:`containers_script`): ``@digest PROJECT SERVICE REF ID DIGEST...`` and, for an image
    from a registry, ``@registry PROJECT SERVICE ANSWER``: the digest the registry serves for
    its tag now, asked through the daemon without pulling. The images' digests come from one
    ``docker image inspect`` of them all."""
    d = as_user(smep.user, smep.uid, "docker")
    ask = registry_query(smep.user, smep.uid, '"$r"')
    return f"""runs=$(echo "$info" | sed -n 's/^@run //p')
iids=$(echo "$runs" | awk 'NF == 4 {{print $4}}' | sort -u)
digests=$([ -n "$iids" ] && {d} image inspect -f {ID_DIGESTS} $iids 2>/dev/null)
echo "$runs" | while read -r p s r i; do
  [ -n "$i" ] || continue
  rest=$(echo "$digests" | awk -v i="$i" '$1 == i {{$1 = ""; print}}')
  echo "@digest $p $s $r $i$rest"
  [ -n "$rest" ] && echo "@registry $p $s $({ask})"
done"""


def parse_images(out: str) -> list[dict]:
    """:func:`images_script`'s lines: per running service its image and the registry's answer."""
    found: dict = {}
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "@digest":
            words = rest.split()
            if len(words) >= 4:
                p, s, ref, image_id = words[:4]
                found[(p, s)] = {"project": p, "service": s, "ref": ref, "id": image_id,
                                 "digests": img.digests_of(ref, words[4:]),
                                 "remote": "", "why": ""}
        elif kind == "@registry":
            p, s, answer = (rest.split(" ", 2) + ["", ""])[:3]
            if (p, s) in found:
                found[(p, s)]["remote"], found[(p, s)]["why"] = img.registry_digest(answer)
    return list(found.values())


def image_data(images: list[dict]) -> dict:
    """:func:`parse_images`' findings as the data of the ``status.image`` lines (what the site
    report shows): per container image, the digest it runs and a newer one the registry has."""
    return {"images": [{"project": f["project"], "service": f["service"], "ref": f["ref"],
                        "id": f["id"], "digest": f["digests"][0] if f["digests"] else "",
                        "newer": f["remote"] if newer(f) else ""} for f in images]}


def image_lines(images: list[dict], smep: Smep, program: str = "tinsnip") -> list[str]:
    """One line per running service: its image, the digest it runs, and whether the registry
    has a newer one for its tag."""
    out = []
    for f in images:
        name = f["service"] if f["service"] == f["project"] else f"{f['project']}/{f['service']}"
        running = f["digests"][0] if f["digests"] else f["id"]
        if not f["digests"]:
            news = "built or loaded here, no registry digest"
        elif newer(f):
            news = (f"newer available: {f['remote']} (`{program} service.deploy --machine {smep.machine} "
                    f"--env {smep.env} --service {f['project']} --pull`)")
        elif f["remote"]:
            news = "the registry has no newer one"
        else:
            news = f"the registry could not be asked: {f['why']}"
        out.append(f"{name}: {f['ref']} runs {running}; {news}")
    return out


def check(h: Host, targets: list, program: str = "tinsnip") -> None:
    """The Testing Checklist of every machine-environment in ``targets`` on host ``h``, and the
    host's port forwards, in one command; one result per item; fixes name ``program``."""
    if h.failed or h.conn is None:
        for t in targets:
            h.note("status", "skipped" if h.failed else "unchecked", t.scope)
        return
    parts = [script(t.smep) for t in targets] + [LIST_COMMAND]
    text = "\n".join(f"echo {MARK}{i}\n{part}" for i, part in enumerate(parts))
    with h.guard("machine.status"):
        out = h.execute(text, step="machine.status", facts=True,
                        show="checklist of " + ", ".join(t.scope for t in targets)).stdout
        chunks = split_facts(out, len(parts))
        titles = dict(ITEMS + (NO_USER,))
        try:
            facts = [parse(chunk) for chunk in chunks[:-1]]
        except ValueError as e:  # output the parser cannot read: a failed step, not a traceback
            raise FactError("the Testing Checklist", e) from e
        for t, found, chunk in zip(targets, facts, chunks):
            for item, passed, detail in evaluate(found, t.smep, program):
                h.note(f"status.{item}", "ok" if passed else "failed", f"{titles[item]}: {detail}",
                       label=t.scope, data=containers(found) if item == "restarting" else None)
            images = parse_images(chunk)
            data = image_data(images)
            for line in image_lines(images, t.smep, program):
                h.note("status.image", "ok", f"image: {line}", label=t.scope, data=data)
        rules = [r for r in parse_rules(chunks[-1]) if r["chain"] == "PREROUTING"]
        h.note("status.forwards", "ok", "standard ports forwarded on this host: " + (", ".join(
            f"{r['port']} -> {r['to']} ({r['owner']})" for r in rules) or "none"),
            data={"forwards": [{k: r[k] for k in ("port", "to", "owner")} for r in rules]})


def containers(facts: dict) -> dict:
    """The containers' facts as data: name, image, image ID, health, start time, Compose project
    and state; and when each service was last deployed (seconds since the epoch, 0: unknown)."""
    state = {n: (s, r) for n, s, r in facts["container"]}
    return {"containers": [{**c, "state": state.get(c["name"], ("unknown", 0))[0],
                            "restarts": state.get(c["name"], ("", 0))[1]}
                           for c in facts["image"]],
            "deployed": dict(facts["deployed"])}
