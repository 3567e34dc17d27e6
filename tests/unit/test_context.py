"""Build contexts: .dockerignore rules as Docker reads them, the digest, the tarball."""
import io
import os
import tarfile

import pytest

from tinsnip_tasks.core.context import context_files, digest, ignored, parse_dockerignore, tarball


@pytest.mark.parametrize("rules, path, out", [
    ("*.pyc", "a.pyc", True),
    ("*.pyc", "pkg/a.pyc", False),          # * stays within one part
    ("**/*.pyc", "pkg/sub/a.pyc", True),
    ("**/*.pyc", "a.pyc", True),
    ("build", "build/x/y.txt", True),       # a folder takes everything under it
    ("/build", "build/y.txt", True),
    ("build", "src/build", False),
    (".git", ".git/HEAD", True),
    ("docs/*.md", "docs/a.md", True),
    ("docs/*.md", "docs/sub/a.md", False),
    ("*.md\n!README.md", "README.md", False),  # an exception takes a file back
    ("*.md\n!README.md", "NOTES.md", True),
    ("!README.md\n*.md", "README.md", True),   # the last matching line wins
    ("# comment\n\n  tmp  ", "tmp/a", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("[a-c].txt", "b.txt", True),
    ("[!a-c].txt", "b.txt", False),
    ("[!a-c].txt", "d.txt", True),
    ("a.b", "axb", False),                     # '.' is literal
    ("secrets/**", "secrets/k/v", True),
    ("", "x", False),
])
def test_dockerignore_rules(rules, path, out):
    assert ignored(parse_dockerignore(rules), path) is out


def make_tree(root):
    (root / "pkg").mkdir()
    (root / "pkg" / "app.py").write_text("print('hi')\n")
    (root / "pkg" / "app.pyc").write_bytes(b"\0")
    (root / "Dockerfile").write_text("FROM x\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    (root / ".env").write_text("SECRET=1\n")
    (root / "docker-compose.yml.j2").write_text("services: {}\n")
    (root / ".dockerignore").write_text("**/*.pyc\nDockerfile\nskipped\n")
    os.symlink("/etc/shadow", root / "skipped")  # left out by .dockerignore: never looked at


def test_context_files_honour_dockerignore_and_keep_what_docker_keeps(tmp_path):
    make_tree(tmp_path)
    assert context_files(tmp_path) == [".dockerignore", "Dockerfile", "pkg/app.py", "run.sh"]


def test_digest_changes_with_content_mode_and_names_only(tmp_path):
    make_tree(tmp_path)
    files = context_files(tmp_path)
    first = digest(tmp_path, files)
    assert digest(tmp_path, files) == first
    (tmp_path / "pkg" / "app.pyc").write_bytes(b"ignored change")
    assert digest(tmp_path, context_files(tmp_path)) == first
    (tmp_path / "pkg" / "app.py").write_text("print('changed')\n")
    second = digest(tmp_path, context_files(tmp_path))
    assert second != first
    os.chmod(tmp_path / "pkg" / "app.py", 0o755)
    assert digest(tmp_path, context_files(tmp_path)) != second


def test_tarball_holds_exactly_the_files(tmp_path):
    make_tree(tmp_path)
    files = context_files(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(tarball(tmp_path, files))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == files
        assert members["run.sh"].mode & 0o111
        assert tar.extractfile("pkg/app.py").read() == b"print('hi')\n"
        assert {m.uid for m in members.values()} == {0}
