"""The gate in front of a machine-environment's NFS mount, the digests of the files the seed
sources, and what must be gone when a machine-environment leaves its host.

On a machine host every local user acts as the export's UID on the mount (``all_squash``, the
same with the lab's FUSE client and a kernel client): the NAS cannot tell two environments of
one host apart, so the separation is made on the host. The export is mounted on
``/var/lib/tinsnip/M-E/nfs``, inside the gate folder ``/var/lib/tinsnip/M-E`` (owner root, group
the machine user's, mode 0710): only the machine user and root may pass it, and nobody but root
can rename or replace what is inside. ``/mnt/M-E`` is a link root makes to that folder, so every
path of the seed (the XDG links, the compose binds, ``.machine/machine.env``) leads there for
the machine user and its rootless daemon, and nowhere for anyone else.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..errors import ConflictError, LeftBehind
from .base import READ_INIT, Cmd, Resource, q, sh
from .resources import _pin_folder, _refuse, mounts_on

GATE_ROOT = "/var/lib/tinsnip"
GATE_MODE = 0o710
SUBID_COUNT = 65536


def gate_dir(mount_point: str) -> str:
    """The gate folder of the machine-environment whose seed path is ``mount_point``."""
    return f"{GATE_ROOT}/{posixpath.basename(mount_point)}"


def nfs_dir(mount_point: str) -> str:
    """Where the export is really mounted; ``mount_point`` is a link to it."""
    return gate_dir(mount_point) + "/nfs"


def sums_file(mount_point: str) -> str:
    """The SHA-256 of every file on the mount that the seed sources, as tinsnip wrote it
    (``sha256sum`` lines, absolute paths under ``mount_point``), kept where only root writes."""
    return gate_dir(mount_point) + "/sums"


#: digests kept per file: the one written last and those before it, so that a rollback to a
#: kept generation (its .env as tinsnip wrote it then) is sourced too
SUMS_KEPT = 8


def with_digest(path: str, digest: str, keep: int = SUMS_KEPT):
    """An edit of the digests file: ``digest`` recorded for ``path`` (nothing changes when it is
    there already), and no more than ``keep`` digests for that path, the oldest going first."""
    line = f"{digest}  {path}"

    def edit(text: str) -> str:
        lines = [l for l in text.splitlines() if l.strip()]
        if line in lines:
            return text
        mine = [l for l in lines if l.split()[1:2] == [path]]
        drop = set(mine[:max(0, len(mine) + 1 - keep)])
        return "".join(l + "\n" for l in lines if l not in drop) + line + "\n"

    return edit


def subid_range(uid: int) -> tuple[int, int]:
    """First and last subordinate UID of machine UID ``uid``: its own 65536, never shared."""
    return uid * SUBID_COUNT, uid * SUBID_COUNT + SUBID_COUNT - 1


# -- what is sourced ------------------------------------------------------------------------

def verified(path_word: str, sums: str, fix: str) -> str:
    """Shell (run as the machine user): succeed only when the file ``path_word`` (a shell word)
    holds exactly bytes whose SHA-256 ``sums`` records for that path; else say so on stderr,
    naming the file and ``fix``, and fail. Nothing is read from the file but its digest."""
    why = (": not the file tinsnip wrote (its SHA-256 is not one recorded in "
           f"{sums}), so nothing is sourced from it; {fix}")
    return (f"{{ h=$(sha256sum < {path_word} 2>/dev/null | cut -c1-64) && [ -n \"$h\" ] && "
            f"awk -v f={path_word} -v h=\"$h\" '$2 == f && $1 == h {{ok = 1}} END {{exit !ok}}' "
            f"{q(sums)} 2>/dev/null || {{ echo {path_word}{q(why)} >&2; false; }}; }}")


# -- processes ------------------------------------------------------------------------------

def pids_of(uid: int, *, keep_manager: bool = False) -> str:
    """Shell printing the PIDs of every live process (zombies aside: they hold nothing) whose
    real or effective UID is ``uid`` or one of its subordinate UIDs, where rootless containers
    run. ``keep_manager`` leaves the user's systemd instance (``systemd``, ``(sd-pam)``)."""
    lo, hi = subid_range(uid)
    manager = ' && $5 != "systemd" && $5 != "(sd-pam)"' if keep_manager else ""
    prog = (f'$2 !~ /^Z/ && ((($3 == {uid} || $4 == {uid}){manager}) || '
            f'($3 >= {lo} && $3 <= {hi}) || ($4 >= {lo} && $4 <= {hi})) {{print $1}}')
    return f"ps -e -o pid=,stat=,ruid=,euid=,comm= | awk {q(prog)}"


def _describe_pids(pids_word: str) -> str:
    """Shell: ``PID (command, UID n)`` for each PID in ``pids_word``, on one line."""
    return (f"ps -o pid=,euid=,comm= -p \"$(echo {pids_word} | tr ' ' ,)\" | "
            "awk '{printf \"%s (%s, UID %s) \", $1, $3, $2}'")


def end_processes(uid: int, who: str, *, keep_manager: bool = False, kill_after: int = 50) -> str:
    """Shell: SIGTERM every process :func:`pids_of` lists (again every second, for late ones),
    SIGKILL what is left after ``kill_after`` tenths of a second, and fail naming every PID
    that still runs another as long after that."""
    lo, hi = subid_range(uid)
    pids = pids_of(uid, keep_manager=keep_manager)
    message = f"processes of {who} (UID {uid} and subordinate UIDs {lo}-{hi}) still run: "
    return (f"i=0; while p=$({pids}); [ -n \"$p\" ]; do "
            f"if [ $i -ge {2 * kill_after} ]; then "
            f"echo {q(message)}\"$({_describe_pids('$p')})\" >&2; exit 1; "
            f"elif [ $i -ge {kill_after} ]; then kill -KILL $p 2>/dev/null || true; "
            f"elif [ $((i % 10)) -eq 0 ]; then kill -TERM $p 2>/dev/null || true; fi; "
            "i=$((i + 1)); sleep 0.1; done")


def user_manager(user: str) -> str:
    """``systemctl`` for ``user``'s own systemd instance, reached from root."""
    return f"systemctl --user -M {q(user + '@')}"


@dataclass(frozen=True)
class DaemonOffOldMount(Resource):
    """No process of ``user`` (its rootless daemon, containerd, shims) or of its subordinate
    UIDs (its containers) runs while the export is still mounted the old way, directly on
    ``mount_point``.

    rootlesskit gives the daemon a copy of the host's mounts from when it started, and every
    container keeps its own: after the mount moves behind the gate they would go on using the
    old mount (or, in the daemon's copy, an empty local folder where the link leads). So the
    move stops them once: the daemon gracefully (it stops its containers), then whatever is
    left. ``machine.docker`` (the next step of ``machine.setup``) starts the daemon again after
    the mount, and it starts the containers by their restart policy.
    """

    user: str
    uid: int
    mount_point: str
    wait_seconds: int = 60

    def describe(self):
        return f"no process of {self.user} started before the gate on {self.mount_point}"

    def fact_command(self):
        p = q(self.mount_point)
        # the processes are counted only where the old mount is still there
        return (f"{READ_INIT}; echo init=$init; if [ -d {p} ] && [ ! -L {p} ]; then echo old=yes; "
                f"echo procs=$({pids_of(self.uid, keep_manager=True)} | wc -l); fi")

    def parse(self, out):
        return dict(l.split("=", 1) for l in out.split() if "=" in l)

    def commands(self, fact):
        if not fact.get("old") or not int(fact.get("procs") or 0):
            return []
        uid, n = q(str(self.uid)), self.wait_seconds * 10
        cmds = []
        if fact.get("init") == "systemd":
            cmds.append(Cmd(f"timeout {self.wait_seconds} {user_manager(self.user)} stop "
                            "docker.service || true",
                            f"stop {self.user}'s docker.service (its containers stop with it)"))
        else:
            cmds.append(Cmd(f"for d in $(pgrep -u {uid} -x dockerd); do kill -TERM \"$d\" || true; "
                            f"done; i=0; while pgrep -u {uid} -x dockerd >/dev/null && "
                            f"[ $i -lt {n} ]; do i=$((i + 1)); sleep 0.1; done",
                            f"stop the rootless daemon of {self.user} (its containers stop with it)"))
        cmds.append(Cmd(end_processes(self.uid, self.user, keep_manager=True),
                        f"end what is left of {self.user}'s daemon and containers"))
        return cmds


@dataclass(frozen=True)
class GateLink(Resource):
    """``link`` is a link root made to ``target`` (the export behind the gate).

    The old layout, the export mounted directly on ``link``, is converted: the old mount is
    unmounted (the new one is already up behind the gate) and its empty folder removed. A folder
    that still holds files once nothing is mounted on it is refused: they were written to the
    host's disk while the export was not mounted, and tinsnip does not delete them. The link is
    made in its folder after that folder has been entered and checked (only root writes there).
    """

    link: str
    target: str

    def describe(self):
        return f"link {self.link} -> {self.target}"

    def fact_command(self):
        p = q(self.link)
        return (f"{mounts_on(self.link, 'mounted')}; "
                f"if [ -L {p} ]; then echo link; readlink {p}; elif [ -d {p} ]; then echo folder; "
                f"elif [ -e {p} ]; then echo other; fi")

    def parse(self, out):
        lines = out.splitlines()
        fact = {"mounted": lines.count("mounted"), "kind": None, "target": None}
        rest = [l for l in lines if l != "mounted"]
        if rest:
            fact["kind"] = rest[0]
            fact["target"] = rest[1] if rest[0] == "link" and len(rest) > 1 else None
        return fact

    def commands(self, fact):
        if fact["kind"] == "other":
            raise ConflictError(f"{self.link} is neither a folder nor a link, and tinsnip leaves "
                                "it alone")
        if fact["kind"] == "link" and fact["target"] == self.target and not fact["mounted"]:
            return []
        folder, name = posixpath.split(self.link)
        folder = folder or "."
        cmds = [Cmd(sh("umount", self.link), f"umount {self.link} (the export's old place)")
                for _ in range(fact["mounted"])]
        if fact["kind"] == "folder":
            kept = (f"{self.link} still holds files with nothing mounted on it (written while "
                    f"the export was not mounted?); move them away and run again")
            cmds.append(Cmd(f"rmdir -- {q(self.link)} 2>/dev/null || {_refuse(kept)}",
                            f"rmdir {self.link}"))
        cmds.append(Cmd(f"( {_pin_folder(folder, root_writes=True)} && "
                        f"ln -sfn -- {q(self.target)} {q(name)} )",
                        f"ln -sfn {self.target} {self.link}"))
        return cmds


# -- teardown -------------------------------------------------------------------------------

def mount_holders(source: str) -> str:
    """Shell printing ``PID UID COMMAND`` of every process whose mount namespace has ``source``
    (``server:/export``) mounted, the host's own included: /proc/PID/mountinfo of each."""
    prog = ('{for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 2) == s) found = 1; break }} '
            'END {exit !found}')
    return (f"for f in $(grep -lsF -- {q(' ' + source + ' ')} /proc/[0-9]*/mountinfo); do "
            f"awk -v s={q(source)} {q(prog)} \"$f\" 2>/dev/null || continue; "
            "p=${f#/proc/}; p=${p%/mountinfo}; "
            "echo \"$p\" \"$(stat -c %u /proc/$p 2>/dev/null)\" \"$(cat /proc/$p/comm 2>/dev/null)\"; "
            "done")


@dataclass(frozen=True)
class NowhereMounted(Resource):
    """``source`` is mounted in no mount namespace on the host: the host's own, a container's,
    or one that a process of another user made while the export was mounted (rootlesskit, a
    container that outlived its daemon). A holder is named, never ended here: the processes
    of the machine-environment were ended by an earlier step, so whatever holds it now is
    someone else's."""

    source: str

    def describe(self):
        return f"{self.source} mounted in no mount namespace on this host"

    def fact_command(self):
        return mount_holders(self.source)

    def parse(self, out):
        return [l.split(None, 2) for l in out.splitlines() if l.strip()]

    def commands(self, fact):
        if not fact:
            return []
        held = ", ".join(f"PID {h[0]} ({h[2] if len(h) > 2 else '?'}, UID "
                         f"{h[1] if len(h) > 1 else '?'})" for h in fact)
        raise LeftBehind(f"{self.source} is still mounted in the mount namespace of {held}: "
                         "end those processes (or unmount it inside their namespace with "
                         "`nsenter -t PID -m umount -l PATH`) and run machine.teardown again")

