"""service.forward, service.logs and nas.remove refuse bad input before any host is contacted
(the inventory's hosts do not even resolve)."""
import pytest

from test_cli import UNREACHABLE, run

GP = ("--machine", "gazette", "--env", "prod")


@pytest.mark.parametrize("args, message", [
    (("service.forward", *GP, "--port", "abc", "--to", "http"), "--port 'abc' is not a whole number"),
    (("service.forward", *GP, "--port", "70000", "--to", "http"), "not a port number 1..65535"),
    (("service.forward", *GP, "--port", "80"), "say where the port goes"),
    (("service.forward", *GP, "--port", "80", "--to", "web"), "no service of gazette has a port named 'web'"),
    (("service.logs", *GP, "--service", "hello", "--tail", "ten"), "--tail 'ten' is not a whole number"),
    (("service.remove", *GP, "--service", "Bad_Name"), "service name 'Bad_Name' is not valid"),
    (("nas.remove", *GP), "run it again with --purge"),
], ids=["port-word", "port-range", "no-target", "unknown-port-name", "tail-word", "bad-service",
        "no-purge"])
def test_bad_input_is_refused_before_any_host(tmp_path, args, message):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(UNREACHABLE)
    p = run(*args, inventory=inv)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stdout + p.stderr
    assert "unreachable" not in p.stdout + p.stderr and "cannot connect" not in p.stderr
