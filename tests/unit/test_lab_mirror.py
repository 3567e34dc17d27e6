"""The lab's Debian mirror comes from the machine's apt sources, in apt's order."""
import pytest

from tinsnip_lab import mirror


def sources(tmp_path, files):
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize("files, expected", [
    ({"sources.list": "deb http://ftp.example/debian bookworm main\n"}, "http://ftp.example/debian"),
    ({"sources.list": "# deb http://old/debian bookworm main\n"
                      "deb [arch=amd64 signed-by=/k.gpg] https://a.example/debian/ bookworm main contrib\n"},
     "https://a.example/debian"),
    ({"sources.list.d/debian.sources": DEB822}, "http://mirror.example/debian"),
    # the security archive and other suites do not qualify; deb-src neither
    ({"sources.list": "deb http://sec/debian-security bookworm-security main\n"
                      "deb-src http://src/debian bookworm main\n",
      "sources.list.d/b.list": "deb http://second/debian bookworm main\n"}, "http://second/debian"),
    # sources.list first, then sources.list.d by name; other suffixes are not read by apt
    ({"sources.list.d/z.sources": DEB822,
      "sources.list.d/a.list": "deb http://first/debian bookworm main\n",
      "sources.list.d/0.list.disabled": "deb http://never/debian bookworm main\n"},
     "http://first/debian"),
    ({"sources.list.d/x.sources": "Enabled: no\n" + DEB822.split("\n\n")[0]}, mirror.DEFAULT),
    ({"sources.list": "deb cdrom:[Debian]/ bookworm main\n"}, mirror.DEFAULT),
    ({}, mirror.DEFAULT),
], ids=["one-line", "options-and-slash", "deb822", "skips-security-and-src", "apt-order",
        "disabled", "cdrom", "none"])
def test_mirror_from_apt_sources(tmp_path, files, expected):
    apt = sources(tmp_path, files)
    assert mirror.resolve("bookworm", environ={}, apt_dir=apt) == expected


def test_the_environment_variable_wins(tmp_path):
    apt = sources(tmp_path, {"sources.list": "deb http://ftp.example/debian bookworm main\n"})
    env = {mirror.ENV_VAR: "http://local:3142/debian/"}
    assert mirror.resolve("bookworm", environ=env, apt_dir=apt) == "http://local:3142/debian"
