"""The seed's Testing Checklist for a machine-environment: one script gathers the facts on the
host, :func:`evaluate` (pure) turns them into pass/fail lines."""
from __future__ import annotations

from ..core.smep import Smep
from ..errors import FactError
from ..ops.base import MARK, Host, q, split_facts
from ..ops.forward import LIST_COMMAND, parse_rules
from ..ops.docker import compose_pattern, docker_host

ITEMS = (
    ("interpolation", "compose interpolation gives no empty values"),
    ("daemon", "the rootless Docker daemon answers"),
    ("environment", "containers have their TIN_* environment"),
    ("writable", "NFS-backed paths are writable (by the user and inside containers)"),
    ("ports", "published ports are bound and within the allocated ten"),
    ("restarting", "no container is restarting or crash-looping"),
)


def script(smep: Smep) -> str:
    """A POSIX shell script, run as root on the machine host, printing ``@kind ...`` lines."""
    u, mp = q(smep.user), q(smep.mount_point)
    d = f"sudo -u {u} env DOCKER_HOST={q(docker_host(smep.uid))} docker"
    compose = compose_pattern('"$1"', '"$2"', "config -q", words=True)
    return f"""
v=$({d} version --format '{{{{.Server.Version}}}}' 2>&1); echo "@daemon $? $(echo $v | tr '\\n' ' ')"
for dir in {mp}/service/*/; do
  [ -f "$dir/docker-compose.yml" ] || continue
  err=$(sudo -u {u} bash -c {q(compose)} _ {mp} "${{dir%/}}" 2>&1 >/dev/null); rc=$?
  printf '@compose\\t%s\\t%s\\t%s\\n' "$(basename "$dir")" "$rc" "$(echo "$err" | tr '\\n\\t' '  ')"
done
for f in state data config; do
  if sudo -u {u} sh -c "touch {mp}/$f/.tinsnip-probe && rm -f {mp}/$f/.tinsnip-probe" 2>/dev/null
  then echo "@write user:$f 0"; else echo "@write user:$f 1"; fi
done
for c in $({d} ps -aq 2>/dev/null); do
  # a container removed meanwhile is skipped, not reported half
  st=$({d} inspect -f '{{{{.Name}}}} {{{{.State.Status}}}} {{{{.RestartCount}}}}' $c 2>/dev/null) || continue
  echo "@container $st"
  n=${{st%% *}}
  e=$({d} exec $c env 2>/dev/null)
  echo "@env $n $(echo "$e" | sed -n 's/^TIN_SERVICE_UID=//p') $(echo "$e" | sed -n 's/^TIN_PORT_0=//p')"
  for p in $({d} port $c 2>/dev/null | sed 's/.*://' | sort -u); do echo "@port $n $p"; done
  for m in $({d} inspect -f '{{{{range .Mounts}}}}{{{{.Source}}}}|{{{{.Destination}}}} {{{{end}}}}' $c); do
    dest=${{m#*|}}
    if {d} exec $c sh -c "touch '$dest/.tinsnip-probe' && rm -f '$dest/.tinsnip-probe'" 2>/dev/null
    then echo "@write $n:$dest 0"; else echo "@write $n:$dest 1"; fi
  done
done
for p in $(ss -ltnH 2>/dev/null | awk '{{print $4}}' | sed 's/.*://' | sort -u); do echo "@listen $p"; done
true
"""


def parse(out: str) -> dict:
    """The script's lines as data. Raises ValueError on a line it cannot read."""
    facts = {"daemon": None, "compose": [], "write": [], "container": [], "env": [],
             "port": [], "listen": set()}
    for line in out.splitlines():
        if line.startswith("@compose\t"):  # tab-separated: a folder name may hold spaces
            _, name, rc, err = (line.split("\t", 3) + [""])[:4]
            facts["compose"].append((name, int(rc), err.strip()))
            continue
        if not line.startswith("@"):
            continue
        kind, _, rest = line[1:].partition(" ")
        parts = rest.split()
        if kind == "daemon":
            facts["daemon"] = (parts[0] == "0", " ".join(parts[1:]))
        elif kind == "write" and len(parts) == 2:
            facts["write"].append((parts[0], parts[1] == "0"))
        elif kind == "container" and len(parts) == 3:
            facts["container"].append((parts[0].lstrip("/"), parts[1], int(parts[2])))
        elif kind == "env" and parts:
            facts["env"].append((parts[0].lstrip("/"), parts[1:]))
        elif kind == "port" and len(parts) == 2:
            facts["port"].append((parts[0].lstrip("/"), int(parts[1])))
        elif kind == "listen" and parts:
            facts["listen"].add(int(parts[0]))
    return facts


def evaluate(facts: dict, smep: Smep) -> list[tuple[str, bool, str]]:
    """(item, passed, detail) for each checklist item."""
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
    return out


def check(h: Host, targets: list) -> None:
    """The Testing Checklist of every machine-environment in ``targets`` on host ``h``, and the
    host's port forwards, in one command; one result per item."""
    if h.failed or h.conn is None:
        for t in targets:
            h.note("status", "skipped" if h.failed else "unchecked", t.scope)
        return
    parts = [script(t.smep) for t in targets] + [LIST_COMMAND]
    text = "\n".join(f"echo {MARK}{i}\n{part}" for i, part in enumerate(parts))
    with h.guard("machine.status"):
        out = h.execute(text, step="machine.status",
                        show="checklist of " + ", ".join(t.scope for t in targets)).stdout
        chunks = split_facts(out, len(parts))
        titles = dict(ITEMS)
        try:
            facts = [parse(chunk) for chunk in chunks[:-1]]
        except ValueError as e:  # output the parser cannot read: a failed step, not a traceback
            raise FactError("the Testing Checklist", e) from e
        for t, found in zip(targets, facts):
            for item, passed, detail in evaluate(found, t.smep):
                h.note(f"status.{item}", "ok" if passed else "failed", f"{titles[item]}: {detail}",
                       label=t.scope)
        rules = [r for r in parse_rules(chunks[-1]) if r["chain"] == "PREROUTING"]
        h.note("status.forwards", "ok", "standard ports forwarded on this host: " + (", ".join(
            f"{r['port']} -> {r['to']} ({r['owner']})" for r in rules) or "none"))
