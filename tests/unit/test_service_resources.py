"""Resources for services and removal: facts in, commands out."""
import pytest

from tinsnip_tasks.errors import ConflictError
from tinsnip_tasks.ops.docker import ComposeDown, ContextTree, DockerStopped, NoContainers
from tinsnip_tasks.ops.forward import Forward, parse_rules
from tinsnip_tasks.ops.resources import Absent, Unmounted, UserAbsent, drop_lines, field_is

# `iptables -t nat -S` as iptables-nft 1.8.9 prints our rules (captured on a lab host), and a
# rule of someone else's
RULES = """\
-A PREROUTING -p tcp -m tcp --dport 389 -m addrtype --dst-type LOCAL -m comment --comment "tinsnip-forward 389 lldap-prod:lldap" -j REDIRECT --to-ports 10200
-A OUTPUT -p tcp -m tcp --dport 389 -m addrtype --dst-type LOCAL -m comment --comment "tinsnip-forward 389 lldap-prod:lldap" -j REDIRECT --to-ports 10200
-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080
"""


def texts(cmds):
    return [c.text for c in cmds]


class TestForward:
    def test_rules_are_read_back_with_their_owner(self):
        assert parse_rules(RULES) == [
            {"chain": "PREROUTING", "port": 389, "owner": "lldap-prod:lldap", "to": 10200},
            {"chain": "OUTPUT", "port": 389, "owner": "lldap-prod:lldap", "to": 10200}]

    def test_a_new_forward_adds_both_chains(self):
        f = Forward(80, 10100, "gazette-prod:hello")
        assert texts(f.plan(RULES)) == [
            "iptables -w -t nat -A PREROUTING -p tcp --dport 80 -m addrtype --dst-type LOCAL "
            "-m comment --comment 'tinsnip-forward 80 gazette-prod:hello' -j REDIRECT --to-ports 10100",
            "iptables -w -t nat -A OUTPUT -p tcp --dport 80 -m addrtype --dst-type LOCAL "
            "-m comment --comment 'tinsnip-forward 80 gazette-prod:hello' -j REDIRECT --to-ports 10100"]

    def test_the_same_forward_again_needs_nothing(self):
        assert Forward(389, 10200, "lldap-prod:lldap").plan(RULES) == []

    def test_a_second_owner_is_refused_naming_the_first(self):
        with pytest.raises(ConflictError, match="port 389 is already forwarded to 10200 for "
                                                "lldap-prod:lldap"):
            Forward(389, 10210, "lldap-test:lldap").plan(RULES)

    def test_a_new_target_replaces_the_old_rules(self):
        cmds = texts(Forward(389, 10201, "lldap-prod:lldap").plan(RULES))
        assert [c.split()[4] + c.split()[5] for c in cmds] == [
            "-DPREROUTING", "-DOUTPUT", "-APREROUTING", "-AOUTPUT"]
        assert cmds[0].endswith("--to-ports 10200") and cmds[2].endswith("--to-ports 10201")

    def test_removal_takes_only_the_owner_s_rules(self):
        assert len(Forward(389, None, "lldap-prod:lldap").plan(RULES)) == 2
        assert Forward(389, None, "lldap-test:lldap").plan(RULES) == []
        assert Forward(None, None, "lldap-prod").plan(RULES) != []  # every service of lldap-prod
        assert Forward(None, None, "lldap-pro").plan(RULES) == []   # never a mere prefix


class TestContextTree:
    tree = ContextTree(10100, "/mnt/gazette-prod/service/app", "d1", lambda: b"tar")

    def test_same_digest_needs_nothing_not_even_the_tarball(self):
        def pack():
            raise AssertionError("packed although nothing is uploaded")
        tree = ContextTree(10100, "/mnt/gazette-prod/service/app", "d1", pack)
        assert tree.plan("d1\n") == []

    def test_the_stamp_is_read_as_the_user(self):
        assert self.tree.fact_command().startswith(
            "setpriv --reuid=10100 --regid=10100 --clear-groups sh -c 'cd / && cat ")

    def test_a_new_context_is_unpacked_beside_and_swapped_in_as_the_user(self):
        cmds = self.tree.plan("missing")
        assert [c.data for c in cmds] == [b"tar", None]
        assert cmds[0].text.startswith("setpriv --reuid=10100 --regid=10100 --clear-groups sh -c")
        assert "tar -xzf - --no-same-owner -C /mnt/gazette-prod/service/app.tinsnip-new" \
            in cmds[0].text
        swap = cmds[1].text
        for kept in (".env", "docker-compose.yml", ".tinsnip-deployed"):
            assert kept in swap
        assert swap.index("mv /mnt/gazette-prod/service/app /mnt/gazette-prod/service/app.tinsnip-old") \
            < swap.index("mv /mnt/gazette-prod/service/app.tinsnip-new /mnt/gazette-prod/service/app")


class TestRemoval:
    down = ComposeDown("gazette-prod", 10100, "/mnt/gazette-prod", "/mnt/gazette-prod/service/s", "s")

    def test_no_containers_nothing_to_take_down(self):
        assert self.down.plan("files\n") == []

    def test_down_the_seed_way_while_the_files_are_there(self):
        (cmd,) = texts(self.down.plan("files\nabc123\n"))
        assert cmd.endswith("cd /mnt/gazette-prod/service/s && docker compose down -t 5 --remove-orphans'")

    def test_containers_without_files_are_removed_directly(self):
        cmds = texts(self.down.plan("abc123\n"))
        assert "docker rm -f abc123" in cmds[0] and "network prune" in cmds[1]

    def test_no_containers_left(self):
        assert NoContainers("u", 1).plan("") == []
        assert "docker rm -f a b" in NoContainers("u", 1).plan("a\nb\n")[0].text

    def test_stopping_the_daemon(self):
        stop = DockerStopped("gazette-prod", 10100)
        assert stop.plan("init=sshd\n") == []
        cmds = texts(stop.plan("init=systemd\nlinger=yes\nprocs=3\nruntime=yes\n"))
        assert cmds[0].startswith("systemctl --user -M gazette-prod@ disable --now docker.service")
        assert cmds[1] == "loginctl disable-linger gazette-prod"
        # the user's processes and its subordinate UIDs' (containers outlive a killed daemon)
        assert "ps -e -o pid=,stat=,ruid=,euid=,comm=" in cmds[2]
        assert "$3 >= 661913600 && $3 <= 661979135" in cmds[2] and "kill -KILL" in cmds[2]
        assert cmds[3] == "rm -rf --one-file-system /run/user/10100"
        assert "no process of UID 10100 or of its subordinate UIDs 661913600-661979135" \
            in stop.describe()

    def test_absent_removes_as_the_user_and_only_when_present(self):
        a = Absent("/mnt/x/service/s", 10100)
        assert a.plan("missing") == []
        assert texts(a.plan("present")) == [
            "setpriv --reuid=10100 --regid=10100 --clear-groups sh -c "
            "'cd / && rm -rf --one-file-system /mnt/x/service/s'"]
        assert texts(Absent("/v/x").plan("present")) == ["rm -rf --one-file-system /v/x"]

    def test_unmounted(self):
        u = Unmounted("/mnt/x-prod")
        assert u.plan("") == []
        assert texts(u.plan("mounted\nfolder\n")) == ["umount /mnt/x-prod", "rmdir /mnt/x-prod"]
        assert texts(u.plan("folder\n")) == ["rmdir /mnt/x-prod"]

    def test_a_user_with_another_id_is_left_alone(self):
        with pytest.raises(ConflictError, match="user x-prod has ID 1000, not 10100"):
            UserAbsent("x-prod", 10100, "/home/x-prod").plan("user=1000\ngroup=\n")

    def test_user_absent(self):
        u = UserAbsent("x-prod", 10100, "/home/x-prod")
        assert u.plan("user=\ngroup=\n") == []
        assert texts(u.plan("user=10100\ngroup=10100\nsubuid=yes\nhome=yes\n")) == [
            "userdel x-prod", "rm -rf --one-file-system /home/x-prod",
            "! getent group x-prod >/dev/null || groupdel x-prod",
            "sed -i '/^x-prod:/d' /etc/subuid"]

    def test_drop_lines_keeps_the_others(self):
        edit = drop_lines(field_is(1, "/mnt/x-prod"))
        assert edit("a /mnt/x-prod nfs\nb /mnt/y nfs\n") == "b /mnt/y nfs\n"
        assert edit("a /mnt/x-prod nfs\n") == ""
