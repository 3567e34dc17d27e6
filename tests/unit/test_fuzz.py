"""Fuzz: thousands of generated names, hosts, paths, registry files, values and secrets (quotes,
line breaks, ``$()``, backticks, globs, unicode, leading dashes) through every way input enters
tinsnip: the inventory loader, the CLI's checks, the registry, the secrets file, and every
command builder (each Resource's fact command and commands, the registry's and the compose
pattern's). Each payload must be refused before any host is contacted (InputError /
InventoryError) or stay one literal word: checked with ``shlex.split`` against the same command
built from a harmless value, by ``bash -n`` on the scripts, by bash running the fact scripts
and sourcing the .env files in a sandbox (a payload that ran would leave a CANARY file), and by
a few real CLI runs. Deterministic (fixed seed); run with ``-s`` to see the counts.
"""
from __future__ import annotations

import dataclasses
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml
from invoke import Context

from tinsnip_tasks.collections import smep as smep_tasks
from tinsnip_tasks.core import envfile
from tinsnip_tasks.core import registry as reg
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.smep import NAME_RE, env_number, make_smep, validate_name
from tinsnip_tasks.core.target import address_of, check_target, nfs_server
from tinsnip_tasks.errors import InputError, InventoryError, TinsnipError
from tinsnip_tasks.ops import docker, forward, resources
from tinsnip_tasks.ops.base import Resource, facts_script, remote_script
from tinsnip_tasks.plans import Target
from tinsnip_tasks.plans import machine as machine_plan
from tinsnip_tasks.plans import nas as nas_plan
from tinsnip_tasks.plans import registry as registry_plan

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261127
FRAGMENTS = ["'", '"', "$(touch CANARY)", "`touch CANARY`", "${HOME}", "$HOME", ";touch CANARY",
             "&& touch CANARY", "| touch CANARY", "\n", "\ntouch CANARY\n", "\r", "\0", "\t", " ",
             "*", "?", "[a]", "~", "\\", "-", "--", "-oProxyCommand=touch CANARY", "é", "😀",
             "\u2028", "\u202e", "\u200b", "#", "=", ":", "@", "[", "]", "/", "..", "%", "{",
             "}", "!", ">", "<", "'\\''", "\\'", "$'\\x41'", "\x1b[31m"]
BASES = ["gazette", "homelab1", "nas_main", "::1", "[::1]:2222", "user@[fe80::1]", "root@h:22",
         "Admin@nas.lan", "dynamicalsystem", "/volume1", "x", "web-2", "s3cret-value", "10.0.0.2",
         "/volume1/x/y", "gazette=04", "hello"]
CHARS = "abcXYZ019_-.:/@[]" + "".join(f for f in FRAGMENTS if len(f) == 1)


class Tally:
    def __init__(self):
        self.cases, self.refused, self.kept, self.leaks = 0, 0, 0, []

    def refuse(self):
        self.cases += 1
        self.refused += 1

    def keep(self):
        self.cases += 1
        self.kept += 1

    def leak(self, what, payload, detail=""):
        self.cases += 1
        self.leaks.append(f"{what}: {payload!r} {detail}")


def payloads(rng: random.Random, n: int) -> list[str]:
    out = list(BASES) + list(FRAGMENTS) + [b + f for b in BASES[:4] for f in FRAGMENTS]
    while len(out) < n:
        kind = rng.random()
        if kind < 0.6:
            p = rng.choice(BASES)
            for _ in range(rng.randint(1, 3)):
                i = rng.randint(0, len(p))
                p = p[:i] + rng.choice(FRAGMENTS) + p[i:]
        elif kind < 0.8:
            p = "".join(rng.choice(CHARS) for _ in range(rng.randint(1, 14)))
        else:
            p = rng.choice(["-", "", " "]) + rng.choice(BASES) + rng.choice(["\n", "\n\n", " ", "", "\t"])
        out.append(p)
    return out


def tokens(text: str):
    """The words of ``text`` by shlex, which does not know that ``"$( ... )"`` opens a new
    quoting context: the quotes around a command substitution are dropped first."""
    try:
        return shlex.split(text.replace('"$(', "$(").replace(')"', ")"), comments=False, posix=True)
    except ValueError as e:
        return e


def one_word(text: str) -> bool:
    """Whether a shell reads ``text``, unquoted, as exactly itself."""
    return (not any(c.isspace() for c in text) and tokens(text) == [text]
            and not set(text) & set("$`\\'\"*?[]~;&|<>(){}!#"))


# -- names, targets, environments (the CLI's own checks) -------------------------------------
def fuzz_names_and_targets(ps, t: Tally):
    for p in ps:
        for check, kind in ((lambda v: validate_name("machine", v), "name"),
                            (check_target, "target"), (env_number, "env")):
            try:
                check(p)
            except InputError:
                t.refuse()
                continue
            if kind == "name" and not (NAME_RE.fullmatch(p) and one_word(p)):
                t.leak("name", p)
            elif kind == "target" and (p.startswith("-") or not one_word(p.replace("[", "")
                                       .replace("]", "")) or not one_word(address_of(p))
                                       or tokens(nfs_server(address_of(p))) != [
                                           nfs_server(address_of(p))]):
                t.leak("target", p)
            else:
                t.keep()


def fuzz_smep_task(ps, t: Tally, rng):
    """collections/smep.py's _smep, as ``inv smep.uid`` calls it."""
    for p in rng.sample(ps, 300):
        args = rng.choice([(p, "gazette", "prod"), ("dynamicalsystem", p, "prod"),
                           ("dynamicalsystem", "gazette", p)])
        try:
            s = smep_tasks._smep(Context(), *args)
        except TinsnipError:
            t.refuse()
            continue
        (t.keep if all(one_word(x) for x in (s.sheet, s.machine, s.env, s.user)) else
         lambda: t.leak("smep task", p))()


# -- the inventory loader, then every plan built from what it accepts --------------------------
BASE_INV = {
    "sheets": {"dynamicalsystem": {"nas": "ds412plus", "volume": "/volume1"}},
    "nas": {"ds412plus": {"host": "ds412plus"}},
    "machines": {"gazette": {"sheet": "dynamicalsystem", "host": "homelab1",
                             "environments": ["prod"], "services": {"hello": {"http": 0}}}},
}
PLACES = ["sheet", "machine", "nas", "host", "nas_host", "volume", "registry", "env", "port",
          "service", "number"]


def place(p, where):
    d = yaml.safe_load(yaml.safe_dump(BASE_INV))
    m = d["machines"]["gazette"]
    if where == "sheet":
        d["sheets"] = {p: d["sheets"]["dynamicalsystem"]}
        m["sheet"] = p
    elif where == "machine":
        d["machines"] = {p: m}
    elif where == "nas":
        d["nas"] = {p: d["nas"]["ds412plus"]}
        d["sheets"]["dynamicalsystem"]["nas"] = p
    elif where == "host":
        m["host"] = p
    elif where == "nas_host":
        d["nas"]["ds412plus"]["host"] = p
    elif where == "volume":
        d["sheets"]["dynamicalsystem"]["volume"] = p
    elif where == "registry":
        d["sheets"]["dynamicalsystem"]["registry"] = "{volume}/" + p + "/{env}"
    elif where == "env":
        m["environments"] = [p]
    elif where == "port":
        m["services"]["hello"] = {p: 0}
    elif where == "service":
        m["services"] = {p: {"http": 0}}
    elif where == "number":
        m["number"] = p
    return d


def plan_resources(inv):
    out = []
    for name, m in inv.machines.items():
        for env in m.environments:
            try:
                s = inv.smep(name, env)
            except InputError:
                continue
            tg = Target(inv, s)
            for fn in (*machine_plan.SETUP, *machine_plan.TEARDOWN, *nas_plan.SETUP,
                       nas_plan.removed):
                out += fn(tg)
            out += registry_plan.entry(inv.registry_path(m.sheet, env), name, m.number)
            out.append(docker.ComposeUp(s.user, s.uid, s.mount_point, f"{s.mount_point}/service/hello",
                                        "hello"))
    for sheet in inv.sheets:
        for env in ("prod", "test"):
            try:
                st = inv.station(sheet, env)
            except InputError:
                continue
            out += nas_plan.station(Target(inv, st.smep))
    return out


def command_texts(r: Resource):
    texts = [r.fact_command()]
    for out in ("missing", "", "directory:0:0:755", "regular file:0:0:644\nabc  -",
                "link\n/else", "init=sshd\nscript=/usr/bin/dockerd-rootless.sh\nrootlesskit=yes\n"
                "uidmap=yes", "init=systemd\nscript=/x\nrootlesskit=yes\nuidmap=yes"):
        try:
            texts += [c.text for c in r.plan(out)]
        except Exception:  # a fact this resource refuses or cannot read: no commands
            continue
    return texts


def fuzz_inventory(ps, t: Tally, rng, tmp: Path, scripts: list):
    path = tmp / "inventory.yaml"
    for i, p in enumerate(rng.sample(ps, 400)):
        where = PLACES[i % len(PLACES)]
        path.write_text(yaml.safe_dump(place(p, where), allow_unicode=True))
        try:
            inv = load_inventory(path, catalog={"hello", "gazette", "lldap"})
            rs = plan_resources(inv)
        except (InventoryError, InputError):
            t.refuse()
            continue
        bad = [x for r in rs for x in command_texts(r) if isinstance(tokens(x), ValueError)]
        values = [v for v in _strings(inv)]
        if bad or not all(one_word(v.replace("[", "").replace("]", "")) for v in values):
            t.leak("inventory." + where, p, bad[:1])
        else:
            t.keep()
            if len(scripts) < 40:
                scripts.append(facts_script(rs))


def _strings(inv):
    for s in inv.sheets.values():
        yield from (s.name, s.nas, s.volume, s.registry.format(volume=s.volume, sheet=s.name, env="prod"))
    for n in inv.nas.values():
        yield from (n.name, n.host)
    for m in inv.machines.values():
        yield from (m.name, m.sheet, m.host, *m.environments, *m.services)
        for sv in m.services.values():
            yield from sv.ports


# -- every Resource, with the payload in each of its string fields ---------------------------
SAMPLES = {"path": "/mnt/x/a", "link": "/home/u/.config/s/@m", "target": "/mnt/x/data",
           "name": "gazette-prod", "home": "/home/gazette-prod", "user": "gazette-prod",
           "mount_point": "/mnt/gazette-prod", "source": "nas:/volume1/s/m/e",
           "service_dir": "/mnt/gazette-prod/service/hello", "project": "hello", "stamp": "ab12",
           "image": "tinsnip/busybox:1.35", "archive": "/opt/tinsnip/images/busybox.tar",
           "unit": "[Unit]\n", "digest": "cd34", "owner": "gazette-prod/hello", "what": "a line",
           "shell": "/bin/bash", "uid": 10100, "gid": 10100, "subid_start": 661913600,
           "content": b"A=1\n", "data": b"tar", "edit": lambda text: text + "x\n", "port": 389,
           "to": 10100, "mode": 0o640}
HARMLESS = "harmless"


def _classes():
    todo, seen = [Resource], []
    while todo:
        for c in todo.pop().__subclasses__():
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return [c for c in seen if dataclasses.is_dataclass(c)]


def build(cls, field, value):
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name == field:
            kw[f.name] = value
        elif f.name in SAMPLES and f.default is dataclasses.MISSING and \
                f.default_factory is dataclasses.MISSING:
            kw[f.name] = SAMPLES[f.name]
    return cls(**kw)


def fuzz_resources(ps, t: Tally, rng, scripts: list):
    classes = _classes()
    assert {resources.File, resources.Edited, docker.ComposeUp, forward.Forward,
            registry_plan.RegistryEntry} <= set(classes)
    sample = rng.sample(ps, 60)
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.type not in ("str", "Optional[str]") or f.name == "what":
                continue
            try:
                base = command_texts(build(cls, f.name, HARMLESS))
            except TypeError:
                continue
            for p in sample:
                got = command_texts(build(cls, f.name, p))
                diff = [(a, b) for a, b in zip(got, base)
                        if isinstance(tokens(a), ValueError) or len(tokens(a)) != len(tokens(b))]
                if diff or len(got) != len(base):
                    t.leak(f"{cls.__name__}.{f.name}", p, diff[:1])
                else:
                    t.keep()
            scripts.append(facts_script([build(cls, f.name, rng.choice(sample))]))


def fuzz_commands(ps, t: Tally):
    """The registry's read command and the seed's compose pattern, with payload paths."""
    for p in ps[:400]:
        for make in (lambda v: registry_plan.read_command(v),
                     lambda v: docker.compose_pattern(v, v + "/service/x", "up -d"),
                     lambda v: docker.compose_as("u", v, v + "/s", "ps")):
            a, b = tokens(make(p)), tokens(make(HARMLESS))
            (t.keep if not isinstance(a, ValueError) and len(a) == len(b) else
             lambda: t.leak("command", p))()


# -- the registry file -------------------------------------------------------------------------
def fuzz_registry(ps, t: Tally, rng):
    lines = ["gazette=01", "lldap=2", "web = 04", "x=99", "station=00", "# c", "", "gazette=00",
             "a=100", "web=04", "b=5\r", "=4", "c=", "Bad=6", "d=7 8"] + [p + "=0" + str(i % 10)
                                                                          for i, p in enumerate(ps[:60])]
    for _ in range(1500):
        text = rng.choice(["\n", "\r\n"]).join(rng.choice(lines) for _ in range(rng.randint(0, 6)))
        try:
            number, registry, new = reg.with_entry(text, "newbox")
        except InputError:
            t.refuse()
            continue
        again = reg.parse_registry(new)
        ok = (again == registry and registry["newbox"] == number and 4 <= number <= 99
              and (new == text or new == reg.format_registry(again))
              and all(NAME_RE.fullmatch(k) for k in again)
              and len(set(again.values())) == len(again))
        t.keep() if ok else t.leak("registry", text)


# -- secrets and .env values ---------------------------------------------------------------------
def fuzz_secrets(ps, t: Tally, tmp: Path):
    keep = []
    for i, p in enumerate(ps):
        value = "s3cr3t-" + p
        try:
            envfile.quote(f"K{i}", value)
        except InputError as e:
            t.refuse() if value not in str(e) else t.leak("secret shown in error", p)
            continue
        keep.append((f"K{i}", value))
        try:
            parsed = envfile.parse_secrets(f"K={envfile.quote('K', value)}\n", "s.env")
        except InputError as e:  # quoting for bash and compose; python-dotenv reads \\ apart
            if "would not read the same" in str(e) and "\\" in value and value not in str(e):
                t.refuse()
            else:
                t.leak("secret refused by its own parser", p, str(e))
            continue
        t.keep() if parsed == {"K": value} else t.leak("secret parse", p)
    text = "".join(envfile.line(k, v) + "\n" for k, v in keep)
    envfile.check_text(text, "fuzz.env")
    f = tmp / "fuzz.env"
    f.write_text(text)
    script = (f"set -a; source {shlex.quote(str(f))}; set +a; for k in "
              + " ".join(k for k, _ in keep) + "; do printf '%s\\0' \"${!k}\"; done")
    out = subprocess.run(["bash", "-c", script], cwd=tmp, capture_output=True,
                         env={"PATH": os.environ["PATH"], "HOME": str(tmp)})
    got = [v.decode() for v in out.stdout.split(b"\0")[:-1]]
    if out.returncode or out.stderr or got != [v for _, v in keep]:
        t.leak("bash sourcing", "", out.stderr[:200])
    # whole secrets files: refused (never showing a value) or read back exactly
    for p in ps[:600]:
        body = f"A=s3cr3t-{p}\n"
        try:
            vals = envfile.parse_secrets(body, "s.env")
        except InputError as e:
            t.refuse() if f"s3cr3t-{p}" not in str(e) or not p else t.leak("secret in error", p)
            continue
        t.keep() if list(vals) == ["A"] else t.leak("secrets file", p)


def run_scripts(scripts, tmp: Path, t: Tally):
    """Fact scripts run for real (read-only: stat, cat, getent...) the way a host gets them (over
    stdin, :func:`remote_script`), and ``bash -n`` on them."""
    for s in scripts:
        text = remote_script(s).encode()
        p = subprocess.run(["bash", "-s"], input=text, cwd=tmp, capture_output=True, timeout=60,
                           env={"PATH": os.environ["PATH"], "HOME": str(tmp)})
        syntax = subprocess.run(["bash", "-n", "-s"], input=text, capture_output=True)
        if syntax.returncode or b"command not found" in p.stderr or b"syntax error" in p.stderr:
            t.leak("script", s[:200], (syntax.stderr + p.stderr)[:200])


def cli_runs(tmp: Path, t: Tally):
    env = {k: v for k, v in os.environ.items() if k not in ("TINSNIP_LAB", "TINSNIP_INVENTORY")}
    env["TINSNIP_INVENTORY"] = str(ROOT / "inventory.yaml")
    runs = [["invoke", "smep.uid", "--sheet", "d$(touch CANARY)", "--machine", "gazette", "--env", "prod"],
            ["invoke", "machine.user", "--machine", "gazette\n", "--env", "prod", "--dry"],
            ["invoke", "machine.user", "--machine", "gazette", "--env", "prod`touch CANARY`", "--dry"],
            ["fabric", "-H", "homelab1;touch CANARY", "machine.user", "--machine", "gazette",
             "--env", "prod", "--dry"]]
    for argv in runs:
        p = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=120)
        t.refuse() if p.returncode == 2 and "error:" in p.stderr else t.leak("cli", argv, p.stderr[-300:])


def test_fuzz_every_payload_is_refused_or_one_literal_word(tmp_path, capsys):
    rng = random.Random(SEED)
    ps = payloads(rng, 2500)
    t, scripts, times = Tally(), [], []
    for name, part in (("names", lambda: fuzz_names_and_targets(ps, t)),
                       ("smep", lambda: fuzz_smep_task(ps, t, rng)),
                       ("inventory", lambda: fuzz_inventory(ps, t, rng, tmp_path, scripts)),
                       ("resources", lambda: fuzz_resources(ps, t, rng, scripts)),
                       ("commands", lambda: fuzz_commands(ps, t)),
                       ("registry", lambda: fuzz_registry(ps, t, rng)),
                       ("secrets", lambda: fuzz_secrets(ps, t, tmp_path)),
                       ("scripts", lambda: run_scripts(scripts, tmp_path, t)),
                       ("cli", lambda: cli_runs(tmp_path, t))):
        started = time.monotonic()
        part()
        times.append(f"{name} {time.monotonic() - started:.1f}s")
    for canary in (tmp_path / "CANARY", ROOT / "CANARY"):
        if canary.exists():
            t.leak("canary", str(canary), "a payload ran")
    with capsys.disabled():
        print(f"\nfuzz: {t.cases} cases, {t.refused} refused before connecting, {t.kept} kept as "
              f"one literal word, {len(t.leaks)} leaks ({', '.join(times)})")
    assert not t.leaks, "\n".join(t.leaks[:20])
