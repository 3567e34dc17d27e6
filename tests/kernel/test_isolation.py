"""Isolation on a kernel NFS client: two environments of gazette on homelab4 (prod and test,
each its own export of ds920 with all_squash to its own UID). ds920 cannot tell their users
apart (every user of homelab4 lands as the export's anonymous UID), so homelab4 itself must
refuse: the other environment's user, its containers, and local accounts, while each owner
keeps its own access. The cross-access matrix is tests/isolation_checks.py's, the one the
namespace hosts run with the FUSE client."""
import pytest

from .conftest import HOST, Env, timed

try:
    import isolation_checks
except ImportError:  # the shared checks are not in this tree
    isolation_checks = None

IMAGE = "busybox:1.36"  # hello's image, which both environments pulled


@pytest.fixture(scope="module")
def two_envs(kernel_lab, kcli, site, deployed):
    """gazette test set up beside prod with its hello, in one site.up."""
    test = Env(site, "test")
    timed("site.up --limit gazette:test:hello (first run)", kcli.inv, "site.up", "--limit",
          "gazette:test:hello")
    return Env(site, "prod"), test


def run(lab):
    return lambda host, command: lab.run(host, command, warn=True, timeout=300)


@pytest.mark.xfail(isolation_checks is None, strict=True,
                   reason="tests/isolation_checks.py and the gate it checks are not in this tree: "
                          "without the gate, gazette-test reads gazette-prod's 0600 files through "
                          "the kernel client (ds920 squashes both users to the export's UID)")
def test_environments_and_local_accounts_are_refused_each_others_data(kernel_lab, two_envs):
    prod, test = two_envs
    if isolation_checks is None:
        # the design's first cell, checked directly: a 0600 file of prod, read by test's user
        path = f"{prod.mount}/data/isolation-secret.txt"
        kernel_lab.run(HOST, f"sudo -u {prod.user} sh -c 'umask 077 && echo secret > {path}'")
        r = kernel_lab.run(HOST, f"sudo -u {test.user} cat {path}", warn=True)
        assert not r.ok and "Permission denied" in r.stderr, r.stdout + r.stderr
        return
    envs = [isolation_checks.Env(e.user, e.uid) for e in (prod, test)]
    rows = isolation_checks.assert_isolated(run(kernel_lab), HOST, envs, ["nobody", 4242], IMAGE)
    assert rows
