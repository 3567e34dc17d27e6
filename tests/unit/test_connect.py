"""Connections follow an SSH profile: allowed hosts, known_hosts files, the SSH config."""
import pytest

import tinsnip_lab
from tinsnip_tasks import connect as cx
from tinsnip_tasks.errors import InputError


def test_a_host_outside_the_allowed_ones_is_refused_before_connecting():
    with pytest.raises(InputError, match="nas.example.org is not one of the hosts"):
        cx.connect("nas.example.org", cx.SshProfile(allowed_hosts=frozenset({"homelab1"})))


def test_allowed_hosts_apply_to_the_address_an_alias_resolves_to(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host homelab1\n    HostName evil.example.org\n")
    profile = cx.SshProfile(ssh_config=str(config), allowed_hosts=frozenset({"homelab1"}))
    with pytest.raises(InputError, match=r"homelab1 \(evil.example.org\) is not one"):
        cx.connect("homelab1", profile)


def test_every_proxyjump_hop_must_be_allowed(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host homelab1\n    ProxyJump jump.example.org\n")
    profile = cx.SshProfile(ssh_config=str(config), allowed_hosts=frozenset({"homelab1"}))
    with pytest.raises(InputError, match="jump.example.org is not one"):
        cx.connect("homelab1", profile)


def test_the_lab_profile_allows_only_lab_hosts():
    profile = tinsnip_lab.ssh_profile()
    assert profile.allowed_hosts == frozenset(tinsnip_lab.LAB_HOSTS.values())
    with pytest.raises(InputError, match="is not one of the hosts"):
        cx.connect("nas.example.org", profile)


def test_without_a_profile_the_users_known_hosts_are_used(monkeypatch, tmp_path):
    from fabric import Connection

    monkeypatch.setenv("HOME", str(tmp_path))
    profile = cx.SshProfile()
    conn = Connection("somehost", config=profile.fabric_config())
    assert profile.known_hosts_files(conn) == [tmp_path / ".ssh" / "known_hosts"]


def test_known_hosts_of_the_ssh_config_then_of_the_profile(tmp_path):
    from fabric import Connection

    config = tmp_path / "ssh_config"
    config.write_text(f"Host box\n    UserKnownHostsFile {tmp_path}/a {tmp_path}/b\n")
    profile = cx.SshProfile(ssh_config=str(config))
    conn = Connection("box", config=profile.fabric_config())
    assert profile.known_hosts_files(conn) == [tmp_path / "a", tmp_path / "b"]
    given = cx.SshProfile(ssh_config=str(config), known_hosts=(str(tmp_path / "c"),))
    assert given.known_hosts_files(conn) == [tmp_path / "c"]


def test_connections_never_inherit_invokes_dry_run():
    from fabric import Config

    base = Config(overrides={"run": {"dry": True}})
    cfg = cx.SshProfile(base=base).fabric_config()
    assert cfg.run.dry is False and cfg.runners.remote.input_sleep == 0.001


def test_the_client_knows_the_keys_known_hosts_give_for_the_name_it_checks(tmp_path):
    import paramiko
    from fabric import Connection

    keys = [paramiko.Ed25519Key.from_private_key_file(str(_keypair(tmp_path, n)))
            for n in ("a", "b", "c")]
    hashed = paramiko.HostKeys.hash_host("box")
    first, second = tmp_path / "known1", tmp_path / "known2"
    first.write_text(f"other ssh-ed25519 {keys[0].get_base64()}\n"
                     f"{hashed} ssh-ed25519 {keys[1].get_base64()}\n"
                     f"[box]:2222 ssh-ed25519 {keys[2].get_base64()}\n")
    second.write_text(f"box ssh-ed25519 {keys[0].get_base64()}\n")
    profile = cx.SshProfile(known_hosts=(str(first), str(second)))
    for port, name, key in ((22, "box", keys[1]), (2222, "[box]:2222", keys[2])):
        conn = Connection("box", port=port, config=profile.fabric_config())
        cx._check_keys(conn, profile)
        known = conn.client.get_host_keys()
        assert known.lookup(name)["ssh-ed25519"] == key  # the first file's, hashed or not
        assert known.lookup("other") is None


def _keypair(folder, name):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)],
                   check=True)
    return folder / name


def test_a_direct_connection_is_dialled_here_with_nodelay_and_acks_asked_at_once():
    """paramiko would make the TCP connection without TCP_NODELAY: the key exchange's messages,
    sent back to back, then waited for the host's delayed acknowledgements."""
    import socket
    from types import SimpleNamespace

    server = socket.create_server(("127.0.0.1", 0))
    conn = SimpleNamespace(host="127.0.0.1", port=server.getsockname()[1],
                           connect_kwargs={"banner_timeout": 5})
    cx.dial(conn, timeout=5)
    sock = conn.connect_kwargs["sock"]
    try:
        assert conn.connect_kwargs["banner_timeout"] == 5
        assert sock.getpeername() == server.getsockname()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        cx.quick_acks(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
    finally:
        sock.close()
        server.close()


def test_a_host_that_refuses_the_connection_is_unreachable_with_the_reason():
    import socket

    from tinsnip_tasks.errors import UnreachableError

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()  # nothing listens there now
    with pytest.raises(UnreachableError, match="Connection refused"):
        cx.connect(f"127.0.0.1:{port}", cx.SshProfile(known_hosts=("/dev/null",)))


def test_the_ssh_config_is_read_again_once_it_changes(tmp_path):
    """Read once per version of the file, not once per profile: a profile kept while the file
    is rewritten (a person fixing a HostName between two runs in one process) sees the change."""
    config = tmp_path / "ssh_config"
    config.write_text("Host a\n    HostName one.example.org\n")
    profile = cx.SshProfile(ssh_config=str(config))
    first = profile.fabric_config().base_ssh_config
    assert first.lookup("a")["hostname"] == "one.example.org"
    assert profile.fabric_config().base_ssh_config is first  # parsed once
    config.write_text("Host a\n    HostName another.example.org\n")
    assert profile.fabric_config().base_ssh_config.lookup("a")["hostname"] == "another.example.org"
