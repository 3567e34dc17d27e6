"""Fuzz: thousands of generated names, hosts, paths, registry files, values and secrets (quotes,
line breaks, ``$()``, backticks, globs, unicode, leading dashes) through every way input enters
tinsnip: the inventory loader, the CLI's checks, the registry, the secrets file, and every
command builder (each Resource's fact command and commands, the registry's and the compose
pattern's). Each payload must be refused before any host is contacted (InputError /
InventoryError) or stay one literal word: checked with ``shlex.split`` against the same command
built from a harmless value, by ``bash -n`` on the scripts, by bash running the fact scripts
and sourcing the .env files in a sandbox (a payload that ran would leave a CANARY file), and by
a few real CLI runs. Then the inventory loader against the classes of inputs an outside fuzzer
found crashes and accepted-but-invalid values with: YAML tags, anchors, aliases and alias bombs,
deep nesting, non-string keys, YAML 1.1 scalars, format strings, look-alike letters, long names
and odd forward entries; each must be refused with a one-line error or load into valid values.

One test per class (``test_fuzz...[yaml-tags]``), so a failure names the class and its inputs;
0 crashes and 0 leaks each. Deterministic (fixed seeds); run with ``-s`` to see the counts.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
        self.cases, self.refused, self.kept, self.leaks, self.crashes = 0, 0, 0, [], []

    def refuse(self):
        self.cases += 1
        self.refused += 1

    def keep(self):
        self.cases += 1
        self.kept += 1

    def leak(self, what, payload, detail=""):
        self.cases += 1
        self.leaks.append(f"{what}: {payload!r} {detail}")

    def crash(self, what, payload, error):
        self.cases += 1
        self.crashes.append(f"{what}: {payload!r}: {type(error).__name__}: {str(error)[:200]}")

    def load(self, what, text: str, path: Path, check=None):
        """Load ``text`` as an inventory: a one-line InventoryError is a refusal; anything
        else raised is a crash; an inventory that loads is kept when ``check(inv)`` (a reason
        it is wrong, or None) says nothing."""
        path.write_text(text)
        try:
            inv = load_inventory(path, catalog={"hello", "gazette", "lldap"})
        except (InventoryError, InputError) as e:
            if "\n" in str(e) or len(str(e)) > 1000:
                self.leak(what, text[:300], f"error is not one short line: {str(e)[:300]!r}")
            else:
                self.refuse()
            return None
        except Exception as e:  # noqa: BLE001 - every other exception is what this counts
            self.crash(what, text[:300], e)
            return None
        why = check(inv) if check else None
        if why:
            self.leak(what, text[:300], why)
        else:
            self.keep()
        return inv


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
                command_texts(build(cls, f.name, HARMLESS))
            except TypeError:
                continue
            for p in sample:
                # compared with a harmless value of the same shape: "/" parts kept, so a path
                # at the root and a relative one are each compared with their like
                base = command_texts(build(cls, f.name, re.sub(r"[^/]+", HARMLESS, p) or HARMLESS))
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
        else:
            t.keep()


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


# -- the inventory loader against the classes of an outside fuzzer ----------------------------
INV_TEXT = """\
sheets:
  dynamicalsystem: {nas: ds412plus, volume: /volume1, registry: <REGISTRY>}
nas:
  ds412plus: {host: <NASHOST>, kind: <KIND>}
machines:
  <MACHINE>:
    sheet: dynamicalsystem
    host: <HOST>
    environments: [<ENV>]
    number: <NUMBER>
    services:
      <SERVICE>: {ports: {<PORT>: <INDEX>}, forward: {<FPORT>: <FTARGET>}}
"""
SLOTS = {"REGISTRY": "'{volume}/{sheet}/station/{env}/machine-registry'", "NASHOST": "nas1",
         "KIND": "synology", "MACHINE": "webapps", "HOST": "homelab1", "ENV": "prod",
         "NUMBER": "40", "SERVICE": "hello", "PORT": "http", "INDEX": "0", "FPORT": "80",
         "FTARGET": "http"}


def inv_text(**slots) -> str:
    text = INV_TEXT
    for k, v in {**SLOTS, **slots}.items():
        text = text.replace(f"<{k}>", v)
    return text


def _all_strings_ascii_words(inv):
    bad = [v for v in _strings(inv) if not isinstance(v, str) or not v.isascii()
           or not one_word(v.replace("[", "").replace("]", ""))]
    return f"accepted {bad[:3]!r}" if bad else None


TAGS = ["!!python/object/apply:os.system ['touch CANARY']", "!!python/name:os.system",
        "!!python/object:os.stat_result", "!!binary aGVsbG8=", "!!set {a: null}", "!!omap [a: 1]",
        "!!timestamp 2024-01-01", "!custom 1", "!<tag:example.com,2000:x> 1", "!!str 1", "!!int 1",
        "!!float 1", "!!map {}", "!!seq []", "!!bool true", "!!null ''", "! 1", "!e!x 1"]


def fuzz_yaml_tags(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(300):
        slot = rng.choice(list(SLOTS))
        tag = rng.choice(TAGS)
        t.load("yaml-tags", inv_text(**{slot: tag}), path,
               lambda inv: f"the tag {tag!r} at {slot} was accepted")


def fuzz_aliases(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(150):
        slot = rng.choice(list(SLOTS))
        value = SLOTS[slot]
        t.load("aliases", inv_text(**{slot: f"&a {value}"}) + "extra: *a\n", path,
               lambda inv: "an anchor was accepted")
    for width in range(2, 12):
        for depth in range(2, 9):
            lines = ["a0: &a0 [" + ",".join(["lol"] * width) + "]"]
            lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]"
                      for i in range(1, depth)]
            t.load("alias-bomb", inv_text() + "\n".join(lines) + "\n", path,
                   lambda inv: "an alias bomb was accepted")
    t.load("recursive-alias", inv_text(ENV="&e [*e]").replace("[&e [*e]]", "&e [*e]"), path,
           lambda inv: "a recursive alias was accepted")


def fuzz_recursion(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(60):
        depth = rng.choice([5, 20, 31, 32, 33, 100, 1000, 5000, 20000])
        opener, closer = rng.choice([("[", "]"), ("{a: ", "}"), ("[{a: ", "}]")])
        slot = rng.choice(["ENV", "PORT", "INDEX", "FTARGET", "NUMBER", "HOST"])
        t.load("recursion", inv_text(**{slot: opener * depth + "x" + closer * depth}), path,
               _all_strings_ascii_words)
    block = "".join("  " * i + "a:\n" for i in range(3000))
    t.load("recursion-block", inv_text() + "deep:\n" + block, path, lambda inv: "accepted")


KEYS = ["1", "-1", "1.5", "true", "false", "null", "~", "''", "2024-01-01", "? [a, b]", "? {a: 1}",
        "0x10", "1:20", "!!binary aGk=", "'é'", "[a]", "{a: 1}"]


def fuzz_non_string_keys(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(300):
        key = rng.choice(KEYS)
        slot = rng.choice(["MACHINE", "SERVICE", "PORT", "FPORT"])
        text = inv_text(**{slot: key})
        if key.startswith("?"):  # a complex key needs the explicit block form
            text = inv_text() + f"{key}\n: x\n"
        t.load("non-string-keys", text, path, _all_strings_ascii_words)


SCALARS_11 = ["yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "010", "0x1A", "0b101",
              "1:20", "1_000", "+10", "-0", "1:20:30", "0777"]
# read the same by YAML 1.1 and 1.2, or a string in PyYAML ("0o10" is a 1.2 octal, a 1.1 string)
SCALARS_OK = ["y", "n", ".inf", ".nan", "1e3", "2024-01-01", "~", "null", "True", "FALSE", "10",
              "0o10"]


def fuzz_yaml11_scalars(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(400):
        value = rng.choice(SCALARS_11 + SCALARS_OK)
        slot = rng.choice(list(SLOTS))
        ambiguous = value in SCALARS_11 and value not in ("+10", "-0")
        t.load("yaml11-scalars", inv_text(**{slot: value}), path,
               lambda inv: f"{value!r} at {slot} was read as YAML 1.1 does" if ambiguous
               else _all_strings_ascii_words(inv))


FIELDS = ["{volume.nope}", "{volume[0]}", "{volume[x]}", "{0}", "{}", "{volume!r}", "{volume!s}",
          "{volume:>99999999}", "{sheet.__class__}", "{env.__class__.__mro__}", "{{", "}}", "{",
          "}", "{volume", "{nope}", "{volume}{volume}", "{sheet:x}", "{env!a}", "{volume:{sheet}}"]


def fuzz_format_strings(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"

    def inside(inv):
        s = inv.sheets["dynamicalsystem"]
        got = inv.registry_path("dynamicalsystem", "prod")
        return None if got.startswith(s.volume + "/") and one_word(got) and len(got) < 300 \
            else f"registry {got[:80]!r}"

    for _ in range(300):
        parts = [rng.choice(FIELDS + ["{volume}", "{sheet}", "{env}", "x", "/"])
                 for _ in range(rng.randint(1, 4))]
        t.load("format-strings", inv_text(REGISTRY=repr("{volume}/" + "".join(parts))), path,
               inside)
        t.load("format-strings", inv_text(REGISTRY=repr("".join(parts))), path, inside)


LOOKALIKES = ["\u0430", "\u0435", "\u043e", "\u0440", "\u0441", "\u0445", "\u03bf", "\uff41",
              "\u0131", "\u017f", "\u212a", "\u200d", "\u0301", "\ufb01", "\u2010", "\u2212",
              "\uff10", "\u0660", "\u00e9", "\u1d00"]


def fuzz_unicode_lookalikes(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(400):
        slot = rng.choice(["MACHINE", "SERVICE", "PORT", "HOST", "NASHOST", "ENV", "KIND", "INDEX",
                           "NUMBER", "FPORT", "FTARGET"])
        value = SLOTS[slot]
        i = rng.randint(0, len(value))
        t.load("unicode-lookalikes", inv_text(**{slot: repr(value[:i] + rng.choice(LOOKALIKES)
                                                            + value[i:])}), path,
               lambda inv: f"a look-alike at {slot} was accepted")


def fuzz_long_names(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"

    def fits(inv):
        for m in inv.machines.values():
            for env in m.environments:
                try:  # what a registry number would be taken for must make a valid user
                    make_smep(m.sheet, m.name, env, 4, pinned_sheet_no=1)
                except InputError as e:
                    return f"accepted, then refused after a number is taken: {e}"
        return None

    for n in list(range(20, 41)) + [64, 100, 255, 1000]:
        for slot in ("MACHINE", "SERVICE", "PORT"):
            for env in ("prod", "preview"):
                t.load("long-names", inv_text(**{slot: "a" * n, "ENV": env}), path, fits)


FORWARDS = ["[http]", "{to: [http]}", "{to: http, env: [prod]}", "{to: {a: 1}}", "null", "80",
            "true", "{}", "[]", "{to: http, env: prod, x: 1}", "{to: http, env: 1}", "'http'",
            "{to: 0}", "[[[]]]"]


def fuzz_forward_types(t: Tally, rng, tmp: Path):
    path = tmp / "inventory.yaml"
    for _ in range(300):
        fport = rng.choice(["80", "0", "70000", "'80'", "null", "[80]", "22", "10100", "10110",
                            "-1", "1.5"])
        t.load("forward-types", inv_text(FPORT=fport, FTARGET=rng.choice(FORWARDS)), path,
               _all_strings_ascii_words)


CLASSES = {
    "names": lambda ps, t, rng, tmp: fuzz_names_and_targets(ps, t),
    "smep": lambda ps, t, rng, tmp: fuzz_smep_task(ps, t, rng),
    "inventory": lambda ps, t, rng, tmp: fuzz_inventory(ps, t, rng, tmp, []),
    "resources": lambda ps, t, rng, tmp: fuzz_resources(ps, t, rng, []),
    "commands": lambda ps, t, rng, tmp: fuzz_commands(ps, t),
    "registry": lambda ps, t, rng, tmp: fuzz_registry(ps, t, rng),
    "secrets": lambda ps, t, rng, tmp: fuzz_secrets(ps, t, tmp),
    "scripts": lambda ps, t, rng, tmp: run_scripts(_scripts(ps), tmp, t),
    "cli": lambda ps, t, rng, tmp: cli_runs(tmp, t),
    "yaml-tags": lambda ps, t, rng, tmp: fuzz_yaml_tags(t, rng, tmp),
    "aliases": lambda ps, t, rng, tmp: fuzz_aliases(t, rng, tmp),
    "recursion": lambda ps, t, rng, tmp: fuzz_recursion(t, rng, tmp),
    "non-string-keys": lambda ps, t, rng, tmp: fuzz_non_string_keys(t, rng, tmp),
    "yaml11-scalars": lambda ps, t, rng, tmp: fuzz_yaml11_scalars(t, rng, tmp),
    "format-strings": lambda ps, t, rng, tmp: fuzz_format_strings(t, rng, tmp),
    "unicode-lookalikes": lambda ps, t, rng, tmp: fuzz_unicode_lookalikes(t, rng, tmp),
    "long-names": lambda ps, t, rng, tmp: fuzz_long_names(t, rng, tmp),
    "forward-types": lambda ps, t, rng, tmp: fuzz_forward_types(t, rng, tmp),
}


@functools.cache
def _payloads() -> tuple:
    return tuple(payloads(random.Random(SEED), 2500))


@functools.cache
def _scripts(ps) -> tuple:
    """The fact scripts of what the inventory and resource fuzzers accepted."""
    import tempfile

    scripts, rng = [], random.Random(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        fuzz_inventory(list(ps), Tally(), rng, Path(tmp), scripts)
    fuzz_resources(list(ps), Tally(), rng, scripts)
    return tuple(scripts)


@pytest.mark.parametrize("name", list(CLASSES))
def test_fuzz_class_is_refused_or_kept_never_a_crash_or_a_leak(name, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    t = Tally()
    started = time.monotonic()
    CLASSES[name](list(_payloads()) if name != "scripts" else _payloads(), t,
                  random.Random(f"{SEED}-{name}"), tmp_path)
    for canary in (tmp_path / "CANARY", ROOT / "CANARY"):
        if canary.exists():
            t.leak("canary", str(canary), "a payload ran")
    with capsys.disabled():
        print(f"\nfuzz[{name}]: {t.cases} cases, {t.refused} refused before connecting, "
              f"{t.kept} kept, {len(t.crashes)} crashes, {len(t.leaks)} leaks "
              f"({time.monotonic() - started:.1f}s)")
    assert not t.crashes, f"{len(t.crashes)} crashes in {name}:\n" + "\n".join(t.crashes[:20])
    assert not t.leaks, f"{len(t.leaks)} leaks in {name}:\n" + "\n".join(t.leaks[:20])
