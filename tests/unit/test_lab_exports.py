"""The lab's /etc/exports parser and nfs-ganesha renderer (tinsnip_lab.nfs.exports)."""

import pytest

from tinsnip_lab.errors import LabError
from tinsnip_lab.nfs import install_into_rootfs, NFS_FILES_DIR, NAS_START_COMMAND
from tinsnip_lab.nfs.exports import (
    Client,
    Export,
    ExportsError,
    assign_export_ids,
    format_exports,
    parse_exports,
    render_ganesha,
    resolve_clients,
)

GAZETTE = ("/volume1/dynamicalsystem/gazette/prod homelab1(rw,sync,all_squash,anonuid=10100,"
           "anongid=10100,no_subtree_check)\n")
STATION = ("/volume1/dynamicalsystem/station/prod "
           "homelab1(ro,sync,all_squash,anonuid=10000,anongid=10000,no_subtree_check) "
           "homelab2(ro,sync,all_squash,anonuid=10000,anongid=10000,no_subtree_check)\n")
HOSTS = {"homelab1": ["10.213.7.21"], "homelab2": ["10.213.7.22"]}


def test_tinsnip_export_line_parses_to_rw_all_squash_with_anon_ids():
    [export] = parse_exports(GAZETTE)
    assert export.path == "/volume1/dynamicalsystem/gazette/prod"
    assert export.line == 1
    [client] = export.clients
    assert (client.host, client.access, client.squash, client.anonuid, client.anongid) == \
        ("homelab1", "RW", "all_squash", 10100, 10100)
    assert client.spec() == ("homelab1(rw,sync,all_squash,anonuid=10100,anongid=10100,"
                             "no_subtree_check)")


def test_several_clients_on_one_line_keep_their_order():
    [export] = parse_exports(STATION)
    assert [c.host for c in export.clients] == ["homelab1", "homelab2"]
    assert {c.access for c in export.clients} == {"RO"}


@pytest.mark.parametrize("options, access, squash", [
    ("", "RO", "root_squash"),
    ("rw", "RW", "root_squash"),
    ("rw,no_root_squash", "RW", "no_root_squash"),
    ("ro,all_squash", "RO", "all_squash"),
    ("rw,all_squash,no_all_squash", "RW", "root_squash"),
    ("ro,rw", "RW", "root_squash"),
], ids=["defaults", "rw", "no-root-squash", "all-squash", "later-wins", "rw-after-ro"])
def test_options_apply_left_to_right_over_exports5_defaults(options, access, squash):
    [export] = parse_exports(f"/srv h({options})\n")
    client = export.clients[0]
    assert (client.access, client.squash) == (access, squash)
    assert (client.anonuid, client.anongid) == (65534, 65534)


def test_comments_blank_lines_continuations_quotes_and_line_defaults():
    text = ('# exports\n\n"/srv/with space" -rw,all_squash \\\n'
            '   a(anonuid=5) b   # trailing comment\n'
            "/srv/oct\\040al c(ro)\n")
    exports = parse_exports(text)
    assert [e.path for e in exports] == ["/srv/with space", "/srv/oct al"]
    a, b = exports[0].clients
    assert (a.host, a.access, a.squash, a.anonuid) == ("a", "RW", "all_squash", 5)
    assert (b.host, b.access, b.squash) == ("b", "RW", "all_squash")
    assert exports[0].line == 3 and exports[1].line == 5


def test_bare_option_list_and_bare_path_mean_every_host_with_a_warning():
    warnings = []
    exports = parse_exports("/a (rw)\n/b\n", warn=warnings.append)
    assert [(e.path, [c.host for c in e.clients]) for e in exports] == \
        [("/a", ["*"]), ("/b", ["*"])]
    assert len(warnings) == 2 and all("every host" in w for w in warnings)


def test_same_path_on_two_lines_merges_and_identical_duplicates_are_ignored():
    warnings = []
    exports = parse_exports("/srv a(rw)\n/srv/ b(ro)\n/srv a(rw,sync)\n", warn=warnings.append)
    assert [(e.path, [c.host for c in e.clients]) for e in exports] == [("/srv", ["a", "b"])]
    assert any("duplicated" in w for w in warnings)


@pytest.mark.parametrize("text, message", [
    ("/srv h(rw,anonuid=abc)\n", 'bad anonuid "anonuid=abc"'),
    ("/srv h(anongid=)\n", 'bad anongid "anongid="'),
    ("/srv h(anonuid=-1)\n", "bad anonuid"),
    ("/srv h(anonuid=99999999999)\n", "bad anonuid"),
    ("/srv h(rw,bogus)\n", 'unknown keyword "bogus"'),
    ("/srv h(rw\n", "bad option list"),
    ("/srv h(rw,,sync)\n", "bad option list"),
    ("/srv h(fsid=abc)\n", 'bad fsid "fsid=abc"'),
    ("/srv h(sec=sys:bogus)\n", "unknown flavor bogus"),
    ("srv h(rw)\n", "is not absolute"),
    ("/srv/../etc h(rw)\n", "'..'"),
    ('"/srv h(rw)\n', "unterminated quote"),
    ("/srv h;rm(rw)\n", "bad client name"),
    ("/srv h(rw)\n/srv h(ro)\n", "incompatible duplicated export entries for h:/srv"),
], ids=["anonuid-abc", "anongid-empty", "anonuid-negative", "anonuid-too-big", "unknown",
        "unclosed", "empty-option", "fsid", "sec", "relative", "dotdot", "quote", "host-chars",
        "conflict"])
def test_refuses_what_exportfs_refuses_naming_file_and_line(text, message):
    with pytest.raises(ExportsError) as info:
        parse_exports(text, source="/etc/exports")
    assert message in str(info.value)
    assert str(info.value).startswith("/etc/exports:")
    assert isinstance(info.value, LabError) and isinstance(info.value, ValueError)


def test_valid_values_are_accepted():
    text = ("/a h(fsid=0,sec=sys:krb5,anonuid=0,anongid=4294967294,insecure,nohide,crossmnt,"
            "mountpoint=/a,async,no_wdelay)\n/b h(fsid=root) 10.0.0.0/24(ro) *.lan(ro) @ng(ro)\n"
            "/c h(fsid=6ba7b810-9dad-11d1-80b4-00c04fd430c8)\n")
    assert len(parse_exports(text)) == 3


def test_empty_file_has_no_exports():
    assert parse_exports("") == []
    assert parse_exports("# nothing\n\n") == []


def test_resolve_clients_replaces_names_and_drops_unknown_ones_with_a_warning():
    warnings = []
    exports = parse_exports(STATION + "/x ghost(rw) 10.0.0.5(rw) 10.1.0.0/16(ro) *(ro) @g(ro)\n")
    resolved = resolve_clients(exports, lambda name: HOSTS.get(name, []), warn=warnings.append)
    assert [c.host for c in resolved[0].clients] == ["10.213.7.21", "10.213.7.22"]
    assert [c.host for c in resolved[1].clients] == ["10.0.0.5", "10.1.0.0/16", "*", "@g"]
    assert warnings == ["failed to resolve ghost; ghost:/x is not exported"]
    assert resolved[0].clients[0].anonuid == 10000


def test_export_ids_are_stable_and_reuse_the_lowest_free_id():
    first = assign_export_ids(["/a", "/b", "/c"])
    assert first == {"/a": 1, "/b": 2, "/c": 3}
    second = assign_export_ids(["/c", "/d"], first)
    assert second == {"/c": 3, "/d": 1}
    assert assign_export_ids(["/c", "/d", "/e"], second) == {"/c": 3, "/d": 1, "/e": 2}


def test_ganesha_config_has_one_export_per_path_with_client_blocks():
    exports = resolve_clients(parse_exports(GAZETTE + STATION), lambda n: HOSTS[n])
    conf = render_ganesha(exports, assign_export_ids([e.path for e in exports]))
    assert conf.count("EXPORT {") == 2
    gazette = conf[conf.index("Export_Id = 1;"):conf.index("Export_Id = 2;")]
    for line in ('Path = "/volume1/dynamicalsystem/gazette/prod";',
                 'Pseudo = "/volume1/dynamicalsystem/gazette/prod";',
                 "Protocols = 3, 4;", "Transports = TCP;", "Access_Type = None;",
                 "Name = VFS;", "Clients = 10.213.7.21;", "Access_Type = RW;",
                 "Squash = All_Squash;", "Anonymous_Uid = 10100;", "Anonymous_Gid = 10100;",
                 # exports(5)'s default `secure`: a local user's own NFS client (unprivileged
                 # port) is refused, as by a kernel server
                 "PrivilegedPort = true;"):
        assert line in gazette
    station = conf[conf.index("Export_Id = 2;"):]
    assert station.count("CLIENT {") == 2 and station.count("Access_Type = RO;") == 2
    for line in ("Enable_NLM = false;", "Enable_RQUOTA = false;", "Graceless = true;"):
        assert line in conf
    assert conf.count("{") == conf.count("}")


def test_ganesha_config_without_exports_still_configures_the_server():
    conf = render_ganesha([], {})
    assert "EXPORT {" not in conf and "NFS_CORE_PARAM {" in conf


def test_format_exports_lists_one_client_a_line():
    text = format_exports(parse_exports(STATION))
    assert text.splitlines()[1].split() == [
        "/volume1/dynamicalsystem/station/prod",
        "homelab2(ro,sync,all_squash,anonuid=10000,anongid=10000,no_subtree_check)"]
    assert format_exports([]) == ""


def test_export_and_client_are_plain_data():
    client = Client("h", ("rw",), "RW")
    assert Export("/p", (client,)) == Export("/p", (Client("h", ("rw",), "RW"),))


def _fake_rootfs(tmp_path):
    root = tmp_path / "root"
    for d in ("usr/sbin", "usr/local", "etc", "var", "run"):
        (root / d).mkdir(parents=True)
    (root / "sbin").symlink_to("usr/sbin")
    (root / "var" / "run").symlink_to("/run")
    (root / "usr/sbin/mount.nfs").write_bytes(b"\x7fELF kernel client")
    (root / "usr/sbin/mount.nfs4").symlink_to("mount.nfs")
    return root


def test_install_into_rootfs_places_the_stand_ins_and_is_idempotent(tmp_path):
    root = _fake_rootfs(tmp_path)
    changed = install_into_rootfs(root)
    assert "/sbin/mount.nfs" in changed and "/usr/local/sbin/exportfs" in changed
    mount_nfs = root / "usr/sbin/mount.nfs"
    assert mount_nfs.read_bytes() == (NFS_FILES_DIR / "mount.nfs").read_bytes()
    assert mount_nfs.stat().st_mode & 0o777 == 0o755
    assert (root / "usr/sbin/mount.nfs.kernel-client").read_bytes() == b"\x7fELF kernel client"
    for name in ("mount.nfs4", "umount.nfs", "umount.nfs4"):
        assert (root / "usr/sbin" / name).resolve() == mount_nfs.resolve()
    assert (root / "usr/local/sbin/exportfs").stat().st_mode & 0o111
    assert (root / "usr/local/lib/tinsnip-nfs/exports.py").is_file()
    assert (root / "etc/exports").read_text() == ""
    assert "Generated by the lab" in (root / "etc/ganesha/ganesha.conf").read_text()
    assert (root / "run/ganesha").is_dir()  # through the rootfs's own /var/run -> /run link
    assert NAS_START_COMMAND.split()[0] == "/usr/local/sbin/tinsnip-nas-start"
    assert install_into_rootfs(root) == []
    assert (root / "usr/sbin/mount.nfs.kernel-client").read_bytes() == b"\x7fELF kernel client"


def test_install_into_rootfs_keeps_an_existing_exports_file(tmp_path):
    root = _fake_rootfs(tmp_path)
    (root / "etc/exports").write_text(GAZETTE)
    install_into_rootfs(root)
    assert (root / "etc/exports").read_text() == GAZETTE


def test_install_into_rootfs_refuses_a_directory_that_is_no_rootfs(tmp_path):
    with pytest.raises(FileNotFoundError):
        install_into_rootfs(tmp_path)


def test_insecure_lets_unprivileged_ports_in_as_exports_5_says():
    text = "/a h(rw,all_squash,insecure) g(rw,all_squash)\n"
    exports = resolve_clients(parse_exports(text), lambda n: ["10.0.0.1"] if n == "h" else ["10.0.0.2"])
    assert [c.secure for c in exports[0].clients] == [False, True]
    conf = render_ganesha(exports, assign_export_ids(["/a"]))
    assert conf.count("PrivilegedPort = false;") == 1 and conf.count("PrivilegedPort = true;") == 1
