"""Standard ports forwarded to a machine-environment's port (the seed's "opinionated clients").

A forward is a pair of iptables ``nat`` rules, in PREROUTING (clients on the network) and OUTPUT
(clients on the host itself), each ``REDIRECT``-ing TCP for the host's own addresses to the
target port and tagged with a comment ``tinsnip-forward PORT OWNER``. One owner per standard port per host: a second owner is
refused, naming the first. A port the host's sshd listens on (``ss``, ``sshd -T``) is refused:
forwarding it would lock the operator out of the host.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import ConflictError
from .base import Cmd, Resource, q

TAG = "tinsnip-forward"
CHAINS = ("PREROUTING", "OUTPUT")
_RULE = re.compile(r"^-A (?P<chain>PREROUTING|OUTPUT) .*--dport (?P<port>\d+) .*--comment "
                   rf"\"?{TAG} (?P=port) (?P<owner>[a-z0-9:-]+)\"? .*--to-ports (?P<to>\d+)")

LIST_COMMAND = ("for c in PREROUTING OUTPUT; do iptables -w -t nat -S $c 2>/dev/null; done "
                f"| grep -- {TAG} || true")
SSHD_MARK = "@@sshd"
#: The TCP ports the host's sshd listens on (``ss``), and those its configuration names.
SSHD_COMMAND = (f"echo {SSHD_MARK}; {{ ss -Hltnp 2>/dev/null | grep -F '\"sshd\"' "
                "| awk '{print \"listen\", $4}'; "
                "sshd -T 2>/dev/null | awk '$1 == \"port\" {print \"port\", $2}'; } || true")


def parse_sshd(out: str) -> set[int]:
    """The ports in :data:`SSHD_COMMAND`'s output (``listen ADDR:PORT``, ``port N`` lines)."""
    ports = set()
    for line in out.splitlines():
        kind, _, value = line.strip().partition(" ")
        port = value.rsplit(":", 1)[-1] if kind == "listen" else value if kind == "port" else ""
        if port.isdigit() and 0 < int(port) <= 65535:
            ports.add(int(port))
    return ports


def parse_rules(out: str) -> list[dict]:
    """Our forward rules in ``iptables -S`` output: chain, port, owner, target port."""
    rules = []
    for line in out.splitlines():
        m = _RULE.match(line.strip())
        if m:
            rules.append({"chain": m["chain"], "port": int(m["port"]), "owner": m["owner"],
                          "to": int(m["to"])})
    return rules


def _iptables(action: str, rule: dict) -> Cmd:
    port, owner, to = int(rule["port"]), rule["owner"], int(rule["to"])
    # --dst-type LOCAL: only connections to this host's own addresses; a connection the host
    # makes to port 80 elsewhere (or routes for others) is left alone
    return Cmd(f"iptables -w -t nat {action} {rule['chain']} -p tcp --dport {port} "
               f"-m addrtype --dst-type LOCAL -m comment "
               f"--comment {q(f'{TAG} {port} {owner}')} -j REDIRECT --to-ports {to}",
               f"iptables {action} {rule['chain']} {port} -> {to} ({owner})")


@dataclass(frozen=True)
class Forward(Resource):
    """TCP ``port`` on the host goes to ``to`` for ``owner`` (``machine-env:service``); with
    ``to=None`` no rule of ``owner`` for ``port`` is left (``port=None``: none at all; an owner
    ``machine-env`` takes in every service of it)."""

    port: Optional[int]
    to: Optional[int]
    owner: str

    def describe(self):
        if self.to is None:
            return f"no forward of {self.owner}" + (f" on port {self.port}" if self.port else "")
        return f"forward {self.port} -> {self.to} ({self.owner})"

    def fact_command(self):
        return LIST_COMMAND + ("" if self.to is None else f"; {SSHD_COMMAND}")

    def parse(self, out):
        rules, _, sshd = out.partition(SSHD_MARK + "\n")
        return {"rules": parse_rules(rules), "sshd": parse_sshd(sshd)}

    def commands(self, fact):
        sshd, fact = fact["sshd"], fact["rules"]
        if self.to is not None and self.port in sshd:
            raise ConflictError(f"the host's sshd listens on port {self.port}: a forward would "
                                "send every SSH connection to the container and lock you out "
                                "of the host; forward another port")
        mine = [r for r in fact if (r["owner"] == self.owner or r["owner"].startswith(self.owner + ":"))
                and (self.port is None or r["port"] == self.port)]
        if self.to is None:
            return [_iptables("-D", r) for r in mine]
        other = [r for r in fact if r["port"] == self.port and r["owner"] != self.owner]
        if other:
            raise ConflictError(f"port {self.port} is already forwarded to "
                                f"{other[0]['to']} for {other[0]['owner']}; remove that "
                                "forward first (service.forward --remove)")
        want = [{"chain": c, "port": self.port, "owner": self.owner, "to": self.to}
                for c in CHAINS]
        return [_iptables("-D", r) for r in mine if r not in want] + \
               [_iptables("-A", r) for r in want if r not in mine]
