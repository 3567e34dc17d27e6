"""Outside lab mode, tinsnip checks host keys against the user's known_hosts: a lab host that
is not listed, or listed with another key, is refused (Fabric alone would accept any key)."""
import subprocess

import pytest

from tinsnip_tasks import connect as cx
from tinsnip_tasks.errors import UnreachableError


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.delenv("TINSNIP_LAB", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    return tmp_path


def test_unknown_host_key_is_refused(lab, home):
    with pytest.raises(UnreachableError, match="not found in known_hosts"):
        cx.connect(f"root@{lab.ip('homelab1')}")


def test_wrong_host_key_is_refused(lab, home):
    other = home / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = (home / "k.pub").read_text().split()
    (home / ".ssh" / "known_hosts").write_text(f"{lab.ip('homelab1')} {pub[0]} {pub[1]}\n")
    with pytest.raises(UnreachableError, match="does not match known_hosts"):
        cx.connect(f"root@{lab.ip('homelab1')}")
