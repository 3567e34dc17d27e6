"""Output through the real CLI (`inv`): stdout for answers and recaps, stderr for errors, colour
only on a terminal, JSON on request, exit codes that tell what went wrong. No host answers here:
the inventory names hosts that do not resolve, or a local port that never speaks SSH."""
import io
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the inventory test_cli.py uses: hosts that do not resolve
UNREACHABLE = (Path(__file__).resolve().parent / "test_cli.py").read_text() \
    .split('UNREACHABLE = """')[1].split('"""')[0]
RED = "\033[31m"


def env(inventory=None, **extra):
    e = {k: v for k, v in os.environ.items() if k not in ("TINSNIP_LAB", "NO_COLOR")}
    if inventory:
        e["TINSNIP_INVENTORY"] = str(inventory)
    e.update(extra)
    return e


def inv(*args, inventory=None, **extra):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT,
                          env=env(inventory, **extra), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def on_terminal(*args, inventory=None, **extra):
    """Run ``inv ARGS`` with stdout and stderr on a pseudo-terminal; return (exit code, text)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "invoke", *args], env(inventory, **extra))
    chunks = []
    while True:
        r, _, _ = select.select([fd], [], [], 60)
        if not r:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def unreachable(tmp_path):
    p = tmp_path / "inventory.yaml"
    p.write_text(UNREACHABLE)
    return p


def test_an_answer_piped_is_only_the_answer():
    p = inv("smep.uid", "--sheet", "dynamicalsystem", "--machine", "gazette", "--env", "test")
    assert (p.returncode, p.stdout, p.stderr) == (0, "10110\n", "")


def test_smep_refuses_an_invalid_inventory(tmp_path):
    bad = tmp_path / "inventory.yaml"
    bad.write_text("sheets: [\n")
    p = inv("smep.uid", "--sheet", "dynamicalsystem", "--machine", "gazette", "--env", "test",
            inventory=bad)
    assert p.returncode == 2 and p.stdout == "" and "not valid YAML" in p.stderr


def test_bad_input_exits_2_on_stderr_before_any_host(unreachable):
    p = inv("machine.setup", "--machine", "gazette", "--env", "prd", inventory=unreachable)
    assert p.returncode == 2 and "prod, test, dev" in p.stderr and "error" not in p.stdout


@pytest.fixture
def pinned(tmp_path):
    """The machine's number is pinned: no registry to read on the NAS."""
    p = tmp_path / "pinned.yaml"
    p.write_text(UNREACHABLE.replace("    sheet: dynamicalsystem\n",
                                     "    sheet: dynamicalsystem\n    number: 1\n"))
    return p


def test_every_unreachable_host_gets_its_recap_line_and_exit_3(unreachable):
    p = inv("machine.setup", "--machine", "gazette", "--env", "prod", inventory=unreachable)
    assert p.returncode == 3
    assert "box1.invalid: cannot connect over SSH" in p.stderr
    assert "nas1.invalid: cannot connect over SSH" in p.stderr
    recap = sorted(l for l in p.stdout.splitlines() if ": ok=" in l)
    assert [l.split(":")[0] for l in recap] == ["box1.invalid", "nas1.invalid"]
    assert all(l.endswith("unreachable=1") for l in recap)
    assert RED not in p.stdout + p.stderr  # piped: no colour


def test_json_recap_is_a_document_on_stdout(pinned):
    p = inv("machine.user", "--machine", "gazette", "--env", "prod", "--json", inventory=pinned)
    data = json.loads(p.stdout)
    host = data["hosts"]["box1.invalid"]
    assert host["reachable"] is False and "cannot connect" in host["unreachable"]
    assert data["exit_code"] == p.returncode == 3
    assert host["steps"] == [] and host["failed"] == 0
    assert data["hosts"]["nas1.invalid"]["reachable"] is False


def test_json_from_the_config(unreachable, tmp_path):
    recap = tmp_path / "recap.json"
    p = inv("machine.user", "--machine", "gazette", "--env", "prod", inventory=unreachable,
            INVOKE_TINSNIP_JSON="1", INVOKE_TINSNIP_RECAP_FILE=str(recap))
    assert json.loads(p.stdout) == json.loads(recap.read_text())


def test_colour_on_a_terminal_and_not_with_no_color(unreachable):
    code, text = on_terminal("machine.user", "--machine", "gazette", "--env", "prod",
                             inventory=unreachable)
    assert code == 3 and RED in text
    code, text = on_terminal("machine.user", "--machine", "gazette", "--env", "prod",
                             inventory=unreachable, NO_COLOR="1")
    assert code == 3 and "\033[" not in text and "unreachable=1" in text


def test_ctrl_c_exits_130_with_a_recap(tmp_path):
    """A host that accepts TCP but never speaks SSH keeps the run waiting; Ctrl-C stops it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    port = server.getsockname()[1]
    p = tmp_path / "inventory.yaml"
    # the NAS and the machine host both accept TCP and never speak, whichever is reached first
    p.write_text(UNREACHABLE.replace("box1.invalid", f"127.0.0.1:{port}")
                 .replace("nas1.invalid", f"127.0.0.1:{port}"))
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "machine.user", "--machine",
                             "gazette", "--env", "prod"], cwd=ROOT, env=env(p),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held, "the run never connected"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    server.close()
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_a_step_running_longer_than_2_s_shows_progress(terminal):
    """Run for real through a local Invoke context: the script sleeps past the 2 s mark."""
    from invoke import Context

    from tinsnip_tasks.ops.base import STEP_MARK, Host
    from tinsnip_tasks.output import Output

    out = _Terminal() if terminal else io.StringIO()
    h = Host("box", Context(), output=Output(out=out, err=io.StringIO()))
    result = h.run(f"echo pulling; echo {STEP_MARK}0 >&2; sleep 2.6; echo done",
                   step="service.image")
    assert result.stdout == "pulling\ndone\n"  # captured as before
    lines = out.getvalue().splitlines()
    if terminal:  # the output, streamed under the step's name (the first line too)
        assert lines == ["box        service.image        | pulling",
                         "box        service.image        | done"]
    else:  # a line saying how long it has run
        assert lines == ["box        service.image        still running (2 s)"]


def test_a_quick_step_or_a_secret_one_shows_nothing_while_it_runs():
    from invoke import Context

    from tinsnip_tasks.ops.base import Host
    from tinsnip_tasks.output import Output

    out = _Terminal()
    h = Host("box", Context(), output=Output(out=out, err=io.StringIO()))
    h.run("echo quick", step="s")
    h.execute("echo s3cr3t; sleep 2.5", step="s", show="compose config", secret=True)
    assert "quick" not in out.getvalue() and "s3cr3t" not in out.getvalue()
    assert "still running" in out.getvalue()
