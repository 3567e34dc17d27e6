"""How a script reaches a host: over stdin, in the C locale, parsed whole, within a time limit.

``Host`` is given a local Invoke ``Context`` in place of a Fabric connection: the same runner
code (stdin thread, EOF, timeout) that drives the SSH channel, with a real ``sh`` at the end.
"""
import os

import pytest
from invoke import Context

from tinsnip_tasks.errors import RemoteError
from tinsnip_tasks.ops.base import Host, Step, remote_script
from tinsnip_tasks.ops.resources import File


class Recording(Context):
    """A local context that remembers every command line it was asked to run."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def run(self, command, **kw):
        self.lines.append(command)
        return super().run(command, **kw)


def host(**kw):
    return Host("local", Recording(), **kw)


def test_file_content_never_travels_in_a_command_line(tmp_path):
    secret = "LLDAP_JWT_SECRET=s3cr3t-value-123"
    h = host()
    target = tmp_path / "x.env"
    h.converge([Step("write", (File(str(target), secret.encode(), mode=0o600, secret=True),))])
    assert target.read_text() == secret
    assert h.conn.lines and all(line == "sh -s" for line in h.conn.lines)


def test_through_sudo_the_command_line_is_fixed_too():
    h = host(sudo=True)
    h.conn.run = lambda command, **kw: h.conn.lines.append(command) or type(
        "R", (), {"ok": True, "stdout": "", "exited": 0, "stderr": ""})()
    h.run("echo secret", step="s")
    assert h.conn.lines == ["sudo -n sh -s"]


def test_scripts_run_in_the_c_locale(monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    assert host().run("echo $LC_ALL", step="s").stdout.strip() == "C"


def test_a_command_reading_stdin_cannot_swallow_the_rest_of_the_script():
    out = host().run("cat\necho after", step="s").stdout
    assert out == "after\n"


def test_a_script_cut_off_in_transit_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    whole = remote_script(f"touch {marker}\necho more")
    cut = whole[:whole.rindex("}")]  # the connection drops before the end
    ctx = Context()
    ctx.run("sh -s", in_stream=__import__("io").StringIO(cut), hide=True, warn=True)
    assert not marker.exists()


def test_a_command_that_hangs_fails_the_step_naming_host_and_step():
    with pytest.raises(RemoteError, match=r"local: step 'wait' failed \(exit timeout\)") as e:
        host(timeout=0.5).run("sleep 5", step="wait")
    assert "no answer within 0.5 s" in str(e.value)


def test_non_utf8_output_does_not_break_the_run():
    out = host().run("printf 'caf\\351\\n'", step="s").stdout
    assert out.startswith("caf") and os.linesep in out


def test_a_long_script_goes_over_in_one_piece():
    """Invoke reads a non-terminal in_stream one character per 1-10 ms turn unless the stream
    hands over more: 100 KB must not take minutes."""
    import time
    started = time.monotonic()
    out = host().run("cat >/dev/null <<'EOF'\n" + "x" * 100_000 + "\nEOF\necho done", step="s")
    assert out.stdout == "done\n" and time.monotonic() - started < 5


def test_the_time_limit_is_invokes_timeouts_command():
    from invoke import Config

    from tinsnip_tasks.ops.base import DEFAULT_TIMEOUT
    from tinsnip_tasks.run import Run

    assert Run(Context()).timeout == DEFAULT_TIMEOUT == 300
    assert Run(Context(config=Config(overrides={"timeouts": {"command": 7}}))).timeout == 7
