"""The cross-access matrix of two machine-environments on one machine host, for any NFS client.

Used by the lab's end-to-end tests (FUSE client, tests/e2e/test_isolation.py) and meant for the
kernel-client hosts as well: nothing here knows how a host is reached. ``run(host, command)``
runs ``command`` as root on ``host`` and returns an object with ``ok``, ``stdout`` and
``stderr`` (an Invoke/Fabric Result run with ``warn=True``, or anything shaped like it).

Each environment is an :class:`Env`; its containers use an image its rootless daemon already
has (``image``). A check returns :class:`Outcome` rows; the ``assert_*`` functions fail with the
whole matrix, so one failed cell shows every other one too.
"""
from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from typing import Callable

q = shlex.quote
DENIED = ("permission denied", "operation not permitted")


@dataclass(frozen=True)
class Env:
    """A machine-environment on the host: ``gazette-prod``, UID 10100, ``/mnt/gazette-prod``."""

    user: str
    uid: int

    @property
    def mount_point(self) -> str:
        return f"/mnt/{self.user}"

    @property
    def docker_host(self) -> str:
        return f"unix:///run/user/{self.uid}/docker.sock"


@dataclass
class Outcome:
    """One cell: ``ok`` when the command succeeded or leaked what it reached for."""

    who: str
    what: str
    ok: bool
    output: str
    says_denied: bool = True  # a refusal must say "Permission denied" (local accounts)

    def __str__(self):
        return f"{self.who:<14} {self.what:<44} {'ALLOWED' if self.ok else 'refused'}: " \
               f"{self.output.strip()[:160]!r}"


def as_account(account: str | int, command: str) -> str:
    """``command`` run by a local account (a name, or a bare UID with no account: setpriv)."""
    if isinstance(account, int):
        return f"setpriv --reuid={account} --regid={account} --clear-groups sh -c {q(command)}"
    return f"sudo -u {q(account)} sh -c {q('cd / && ' + command)}"


def docker(env: Env, args: str) -> str:
    """``docker ARGS`` against ``env``'s own rootless daemon, as its user."""
    return f"sudo -u {q(env.user)} env DOCKER_HOST={q(env.docker_host)} docker {args}"


def plant_secret(run: Callable, host: str, owner: Env) -> str:
    """A 0600 file in ``owner``'s data folder, written by ``owner``; returns its content."""
    token = "isolation-" + secrets.token_hex(8)
    path = f"{owner.mount_point}/data/isolation-secret.txt"
    r = run(host, as_account(owner.user, f"umask 077 && echo {token} > {q(path)} && cat {q(path)}"))
    assert r.ok and token in r.stdout, f"{owner.user} cannot write its own data: {r.stderr}"
    return token


LEAKS = ("TIN_SERVICE_UID=",)  # a line of machine.env


def _outcome(run, host, who, what, command, token, *, says_denied=True) -> Outcome:
    r = run(host, command)
    out = (r.stdout or "") + (r.stderr or "")
    return Outcome(str(who), what, r.ok or token in out or any(x in out for x in LEAKS), out,
                   says_denied)


def local_cross_access(run: Callable, host: str, owner: Env, accounts: list, token: str) -> list:
    """What each of ``accounts`` (names or bare UIDs) gets when it reaches for ``owner``'s data
    through every path the seed uses, and through the gate's own path."""
    mp = owner.mount_point
    cases = [
        ("read a 0600 data file", f"cat {mp}/data/isolation-secret.txt"),
        ("read .machine/machine.env", f"cat {mp}/.machine/machine.env"),
        ("ls the mount", f"ls -la {mp}/"),
        ("ls the data folder", f"ls {mp}/data/"),
        ("write into data/", f"echo x > {mp}/data/isolation-intruder.txt"),
        ("read .env of a service", f"cat {mp}/service/*/.env"),
        ("ls behind the link", f"ls $(readlink {mp})"),
        ("ls the gate", f"ls $(dirname $(readlink {mp}))"),
    ]
    return [_outcome(run, host, who, what, as_account(who, cmd), token)
            for who in accounts for what, cmd in cases]


def container_cross_access(run: Callable, host: str, owner: Env, intruder: Env, image: str,
                           token: str) -> list:
    """What a rootless container of ``intruder`` gets from ``owner``'s mount: a named volume
    binding it (``driver_opts: {type: none, o: bind, device: ...}``), bind mounts of the mount,
    of its data folder and of the gates' folder."""
    mp, vol = owner.mount_point, f"isolation-{owner.user}"
    run(host, docker(intruder, f"volume rm -f {vol}"))
    created = run(host, docker(intruder, f"volume create --driver local -o type=none -o o=bind "
                                         f"-o device={q(mp)} {vol}"))
    assert created.ok, created.stderr
    runs = [
        ("named volume bound to the mount",
         f"run --rm -v {vol}:/x {q(image)} cat /x/.machine/machine.env /x/data/isolation-secret.txt"),
        ("bind of the mount", f"run --rm -v {q(mp)}:/x {q(image)} cat /x/data/isolation-secret.txt"),
        ("bind of the data folder",
         f"run --rm -v {q(mp + '/data')}:/x {q(image)} cat /x/isolation-secret.txt"),
        ("bind of the gates' folder",
         f"run --rm -v /var/lib/tinsnip:/x {q(image)} sh -c 'cat /x/{owner.user}/nfs/data/*'"),
    ]
    try:
        # the daemon words a refused bind in several ways; failing without a leak is the point
        return [_outcome(run, host, f"{intruder.user}:ctr", what, docker(intruder, args), token,
                         says_denied=False) for what, args in runs]
    finally:
        run(host, docker(intruder, f"volume rm -f {vol}"))


def own_access(run: Callable, host: str, owner: Env, image: str, token: str) -> list:
    """The owner, its daemon and a container of it as the seed runs them (its UID, binds through
    the XDG links) keep full use of the mount."""
    mp = owner.mount_point
    xdg = f"/home/{owner.user}/.local/share"
    sheet_link = f"$(ls -d {xdg}/*/@*)"
    runs = [
        ("read its 0600 data file", as_account(owner.user, f"cat {mp}/data/isolation-secret.txt")),
        ("read its machine.env", as_account(owner.user, f"grep -c TIN_ {mp}/.machine/machine.env")),
        ("write into its data/", as_account(owner.user, f"echo own > {mp}/data/isolation-own.txt "
                                                        f"&& cat {mp}/data/isolation-own.txt")),
        ("read through its XDG link",
         as_account(owner.user, f"cat {sheet_link}/isolation-secret.txt")),
        ("its container (its UID) writes its data",
         docker(owner, f"run --rm --user {owner.uid}:{owner.uid} -v {mp}/data:/x {q(image)} "
                       f"sh -c 'echo ctr > /x/isolation-ctr.txt && cat /x/isolation-secret.txt'")),
    ]
    out = []
    for what, cmd in runs:
        r = run(host, cmd)
        out.append(Outcome(owner.user, what, r.ok, (r.stdout or "") + (r.stderr or "")))
    return out


def nfs_client_cross_access(run: Callable, host: str, nas: str, export: str, accounts: list,
                            token: str) -> list:
    """What each of ``accounts`` gets when it skips the mount and speaks NFS to the NAS itself
    with a userspace client (libnfs's ``nfs-cat``, which the host must have): the gate is a
    check of the host's paths, so only the NAS refusing unprivileged source ports (exports'
    ``secure``) stops this. Empty when the host has no ``nfs-cat``."""
    if not run(host, "command -v nfs-cat").ok:
        return []
    url = f"nfs://{nas}{export}/data/isolation-secret.txt"
    return [_outcome(run, host, who, "own NFS client (nfs-cat)", as_account(who, f"nfs-cat {q(url)}"),
                     token, says_denied=False) for who in accounts]


def not_refused(outcomes: list) -> list:
    """The cross-access rows that were not refused as they must be (should be none)."""
    return [o for o in outcomes
            if o.ok or (o.says_denied and not any(d in o.output.lower() for d in DENIED))]


def assert_isolated(run: Callable, host: str, envs: list, accounts: list, image: str) -> list:
    """Every environment in ``envs`` refuses every other one, its containers, and each of
    ``accounts`` (local users or bare UIDs), and keeps its own access. Returns the matrix."""
    rows, tokens = [], {e.user: plant_secret(run, host, e) for e in envs}
    for owner in envs:
        others = [e for e in envs if e != owner]
        rows += local_cross_access(run, host, owner, [e.user for e in others] + list(accounts),
                                   tokens[owner.user])
        for intruder in others:
            rows += container_cross_access(run, host, owner, intruder, image, tokens[owner.user])
    bad = not_refused(rows)
    mine = [o for owner in envs for o in own_access(run, host, owner, image, tokens[owner.user])]
    broken = [o for o in mine if not o.ok]
    assert not bad and not broken, "\n".join(
        ["cross access not refused (with 'Permission denied'):"] + [str(o) for o in bad]
        + ["own access broken:"] + [str(o) for o in broken] + ["whole matrix:"]
        + [str(o) for o in rows + mine])
    return rows + mine
