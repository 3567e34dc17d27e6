"""`lab.up --extra-hosts N`: the lab's host list grows by N cheap machine hosts, remembered in
the lab folder so that status and down know them (no host is started here)."""
from tinsnip_lab import settings


def test_extra_hosts_are_added_remembered_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TINSNIP_LAB_DIR", str(tmp_path))
    base = {h: ip for h, ip in settings.LAB_HOSTS.items() if not h.startswith("extra")}
    try:
        settings.set_extra_hosts(3)
        assert list(settings.LAB_HOSTS)[-3:] == ["extra01", "extra02", "extra03"]
        assert settings.LAB_HOSTS["extra03"].endswith(".103")
        assert settings.extra_hosts() == 3 and (tmp_path / "extra-hosts").read_text() == "3\n"
        settings.set_extra_hosts(0)
        assert settings.LAB_HOSTS == base and settings.extra_hosts() == 0
    finally:
        settings.set_extra_hosts(0)
