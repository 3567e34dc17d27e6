"""Connections: lab mode reaches only lab hosts; unknown host keys are refused."""
import pytest

from tinsnip_tasks import connect as cx
from tinsnip_tasks.errors import InputError


def test_lab_mode_refuses_a_host_that_is_not_in_the_lab(monkeypatch):
    monkeypatch.setenv("TINSNIP_LAB", "1")
    with pytest.raises(InputError, match="only lab hosts are reached"):
        cx.connect("nas.example.org")


def test_lab_mode_follows_the_environment(monkeypatch):
    monkeypatch.delenv("TINSNIP_LAB", raising=False)
    assert not cx.lab_mode()
    monkeypatch.setenv("TINSNIP_LAB", "1")
    assert cx.lab_mode()


def test_outside_lab_mode_the_users_known_hosts_are_used(monkeypatch, tmp_path):
    monkeypatch.delenv("TINSNIP_LAB", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    conn = cx.Connection("somehost", config=cx.make_config(False))
    assert cx.known_hosts_files(conn, False) == [tmp_path / ".ssh" / "known_hosts"]


