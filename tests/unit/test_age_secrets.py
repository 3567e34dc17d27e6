"""Encrypted secrets files: age's format both ways (pyrage and the ``age`` command), the secrets
rules on the decrypted text, ``secrets.encrypt`` and ``secrets.edit`` with a real editor process
(a script), Ctrl-C and termination during the edit, and no plain copy left behind."""
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tinsnip_tasks.core import agefile
from tinsnip_tasks.core.inventory import load_inventory
from tinsnip_tasks.core.render import catalog
from tinsnip_tasks.core.smep import make_smep
from tinsnip_tasks.errors import InputError
from tinsnip_tasks.plans import catalog as catalog_plan
from tinsnip_tasks.plans import secrets

ROOT = Path(__file__).resolve().parents[2]
LLDAP = ("LLDAP_LDAP_BASE_DN='dc=example,dc=com'\nLLDAP_JWT_SECRET='$(touch pwned) `id` *'\n"
         "LLDAP_KEY_SEED='a b  c'\nLLDAP_LDAP_USER_PASS=\"pa!! w'rd\"\n")
LEAK = "s3cr3t-"


def age_cli():
    path = shutil.which("age")
    assert path, "the age command is missing: run make install (.ci/test-deps.sh installs it)"
    return path


@pytest.fixture
def key(tmp_path):
    """An identity file made by age-keygen (pyrage when it is missing), mode 0600."""
    path = tmp_path / "keys" / "age.key"
    path.parent.mkdir()
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    path.chmod(0o600)
    return path


@pytest.fixture
def project(tmp_path):
    """The reference inventory in a folder of its own with an empty secrets folder."""
    data = yaml.safe_load((ROOT / "inventory.yaml").read_text())
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "secrets").mkdir()
    return tmp_path


def plain_of(project):
    return project / "secrets" / "lldap-prod.env"


def write(path, text, mode=0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def public_key(key):
    return next(l.split(": ")[1] for l in key.read_text().splitlines() if "public key" in l)


def test_pyrage_round_trip_is_armored_and_needs_the_key(key):
    ids = agefile.identities(key.read_text(), str(key))
    data = agefile.encrypt(LLDAP, agefile.public(ids))
    assert data.startswith(agefile.ARMOR_HEAD) and LLDAP.encode() not in data
    assert agefile.decrypt(data, ids, "f") == LLDAP
    other = agefile.identities(subprocess.run(["age-keygen"], capture_output=True, text=True,
                                              check=True).stdout, "other")
    with pytest.raises(InputError, match="none of the keys"):
        agefile.decrypt(data, other, "f")


def test_what_the_age_command_encrypts_tinsnip_decrypts(project, key):
    plain = plain_of(project)
    enc = secrets.encrypted(plain)
    subprocess.run([age_cli(), "-r", public_key(key), "-o", str(enc)], input=LLDAP.encode(),
                   check=True)
    enc.chmod(0o600)
    assert secrets.opened(plain, str(key))[1] == LLDAP
    assert secrets.read_secrets(plain, str(key))["LLDAP_JWT_SECRET"] == "$(touch pwned) `id` *"


def test_what_tinsnip_encrypts_the_age_command_decrypts(project, key):
    plain = write(plain_of(project), LLDAP)
    assert secrets.encrypt(plain, str(key)).changed
    out = subprocess.run([age_cli(), "-d", "-i", str(key), str(secrets.encrypted(plain))],
                         capture_output=True, check=True)
    assert out.stdout.decode() == LLDAP


def test_encrypted_secrets_render_the_same_env_as_plain_ones(project, key):
    inv = load_inventory(project / "inventory.yaml", catalog=catalog())
    lp = make_smep("dynamicalsystem", "lldap", "prod", 2)
    write(plain_of(project), LLDAP)
    before = catalog_plan.render_service(inv, lp, "lldap").env
    secrets.encrypt(plain_of(project), str(key))
    with pytest.raises(InputError, match="is encrypted: set tinsnip.age_identity"):
        catalog_plan.render_service(inv, lp, "lldap")
    from dataclasses import replace
    assert catalog_plan.render_service(replace(inv, age_identity=str(key)), lp, "lldap").env == before


def test_encrypt_removes_the_plain_file_only_once_and_is_idempotent(project, key):
    plain = write(plain_of(project), LLDAP)
    dry = secrets.encrypt(plain, str(key), dry=True)
    assert dry.changed and plain.exists() and not secrets.encrypted(plain).exists()
    first = secrets.encrypt(plain, str(key))
    enc = secrets.encrypted(plain)
    assert first.changed and not plain.exists() and stat.S_IMODE(enc.stat().st_mode) == 0o600
    content = enc.read_bytes()
    again = secrets.encrypt(plain, str(key))
    assert not again.changed and enc.read_bytes() == content
    assert [p.name for p in plain.parent.iterdir()] == [enc.name]  # no temporary file left


def test_a_plain_file_the_rules_refuse_is_not_encrypted(project, key):
    plain = write(plain_of(project), f"A='{LEAK}x\n")
    with pytest.raises(InputError, match="line 1") as err:
        secrets.encrypt(plain, str(key))
    assert LEAK not in str(err.value)
    assert plain.exists() and not secrets.encrypted(plain).exists()


def test_both_files_at_once_are_refused_naming_both(project, key):
    plain = write(plain_of(project), LLDAP)
    write(secrets.encrypted(plain), "x")
    with pytest.raises(InputError) as err:
        secrets.opened(plain, str(key))[1]
    assert str(plain) in str(err.value) and str(secrets.encrypted(plain)) in str(err.value)


@pytest.mark.parametrize("which", ["encrypted", "identity"])
def test_an_encrypted_file_or_identity_others_can_read_is_refused(project, key, which):
    plain = write(plain_of(project), LLDAP)
    secrets.encrypt(plain, str(key))
    path = secrets.encrypted(plain) if which == "encrypted" else key
    path.chmod(0o644)
    with pytest.raises(InputError) as err:
        secrets.opened(plain, str(key))[1]
    assert str(err.value).endswith(f"run: chmod 600 {path}")


def test_a_damaged_or_foreign_file_is_refused_without_its_content(project, key):
    enc = write(secrets.encrypted(plain_of(project)), f"A={LEAK}\n")
    with pytest.raises(InputError, match="is not an age-encrypted file") as err:
        secrets.opened(plain_of(project), str(key))[1]
    assert LEAK not in str(err.value)
    write(key, f"# {LEAK}\nAGE-SECRET-KEY-1NOTAKEY\n")
    with pytest.raises(InputError, match="line 2: the secret key is damaged") as err:
        secrets.opened(plain_of(project), str(key))[1]
    assert LEAK not in str(err.value) and enc.exists()


def test_recipients_file_adds_readers_and_must_not_be_writable_by_others(project, key, tmp_path):
    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    listed = project / "secrets" / secrets.RECIPIENTS
    listed.write_text(f"# a second operator\n{public_key(other)}\n")
    plain = write(plain_of(project), LLDAP)
    assert "2 recipient(s)" in secrets.encrypt(plain, str(key)).detail
    out = subprocess.run([age_cli(), "-d", "-i", str(other), str(secrets.encrypted(plain))],
                         capture_output=True, check=True)
    assert out.stdout.decode() == LLDAP
    listed.chmod(0o666)
    with pytest.raises(InputError, match="chmod go-w"):
        secrets.recipients(plain, agefile.identities(key.read_text(), "k"))


def editor(tmp_path, body):
    """An editor script: it records the file it was given and that file's and folder's modes
    in ``seen``, then runs ``body`` ($1 is the file)."""
    seen = tmp_path / "seen"
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\necho \"$1 $(stat -c %a \"$1\") $(stat -c %a \"$(dirname \"$1\")\")\""
                      f" > {seen}\n{body}\n")
    script.chmod(0o755)
    return {"EDITOR": str(script)}, seen


def test_edit_encrypts_what_the_editor_saved_and_leaves_no_plain_copy(project, key, tmp_path):
    plain = write(plain_of(project), LLDAP)
    secrets.encrypt(plain, str(key))
    env, seen = editor(tmp_path, "echo NEW_KEY=s3cr3t >> \"$1\"")
    out = secrets.edit(plain, str(key), environ=env)
    assert out.changed
    assert secrets.opened(plain, str(key))[1] == LLDAP + "NEW_KEY=s3cr3t\n"
    path, file_mode, dir_mode = seen.read_text().split()
    assert (file_mode, dir_mode) == ("600", "700")
    assert path.startswith("/dev/shm/") == os.path.isdir("/dev/shm")
    assert not Path(path).parent.exists()
    assert sorted(p.name for p in plain.parent.iterdir()) == [secrets.encrypted(plain).name]


def test_edit_without_a_change_rewrites_nothing(project, key, tmp_path):
    plain = write(plain_of(project), LLDAP)
    secrets.encrypt(plain, str(key))
    before = secrets.encrypted(plain).read_bytes()
    env, _ = editor(tmp_path, "true")
    assert not secrets.edit(plain, str(key), environ=env).changed
    assert secrets.encrypted(plain).read_bytes() == before


def test_edit_starts_a_new_file_from_the_template(project, key, tmp_path):
    env, _ = editor(tmp_path, "echo A=1 >> \"$1\"")
    secrets.edit(plain_of(project), str(key), template="# lldap needs: X\n", environ=env)
    assert secrets.opened(plain_of(project), str(key))[1] == "# lldap needs: X\nA=1\n"


@pytest.mark.parametrize("body, error", [
    (f"echo \"B='{LEAK}\" >> \"$1\"", "line 5"),          # the secrets rules refuse it
    ("exit 3", "exited with status 3"),                   # the editor fails
])
def test_a_refused_edit_or_a_failed_editor_writes_nothing(project, key, tmp_path, body, error):
    plain = write(plain_of(project), LLDAP)
    secrets.encrypt(plain, str(key))
    before = secrets.encrypted(plain).read_bytes()
    env, seen = editor(tmp_path, body)
    with pytest.raises(InputError, match=error) as err:
        secrets.edit(plain, str(key), environ=env)
    assert LEAK not in str(err.value)
    assert secrets.encrypted(plain).read_bytes() == before
    assert not Path(seen.read_text().split()[0]).parent.exists()


def tinsnip(project, key, env, **kw):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TINSNIP_", "INVOKE_"))}
    clean.update(PYTHONPATH=str(ROOT), TINSNIP_AGE_IDENTITY=str(key), **env)
    return subprocess.Popen([sys.executable, "-m", "tinsnip_tasks", "secrets.edit", "--machine",
                             "lldap", "--env", "prod"], cwd=project, env=clean,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def wait_for(path, proc):
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text().strip()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the editor never started"
        time.sleep(0.05)
    return Path(path.read_text().split()[0])


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_or_termination_during_the_edit_leaves_no_temporary_file(project, key, tmp_path,
                                                                       how):
    plain = write(plain_of(project), LLDAP)
    secrets.encrypt(plain, str(key))
    before = secrets.encrypted(plain).read_bytes()
    env, seen = editor(tmp_path, "echo X=1 >> \"$1\"; exec sleep 60")
    proc = tinsnip(project, key, env, start_new_session=True)
    temp = wait_for(seen, proc)
    assert temp.exists()
    if how == "ctrl-c":  # what the terminal does: SIGINT to the whole foreground group
        os.killpg(proc.pid, signal.SIGINT)
    else:  # tinsnip alone is told to end (the editor is its child)
        os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert not temp.parent.exists()
    assert secrets.encrypted(plain).read_bytes() == before
    assert "X=1" not in out + err and "nothing was written" in err


def test_the_edit_task_through_the_cli(project, key, tmp_path):
    plain = write(plain_of(project), LLDAP)
    env, _ = editor(tmp_path, "echo X=1 >> \"$1\"")
    p = tinsnip(project, key, env)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "is not encrypted; run tinsnip secrets.encrypt" in err
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TINSNIP_", "INVOKE_"))}
    enc = subprocess.run([sys.executable, "-m", "tinsnip_tasks", "secrets.encrypt", "-m", "lldap",
                          "-e", "prod"], cwd=project, capture_output=True, text=True,
                         env={**clean, "PYTHONPATH": str(ROOT), "TINSNIP_AGE_IDENTITY": str(key)})
    assert enc.returncode == 0 and ": changed (encrypted to 1 recipient(s)" in enc.stdout, enc.stderr
    p = tinsnip(project, key, env)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "lldap-prod.env.age: changed" in out, err
    assert secrets.opened(plain, str(key))[1].endswith("X=1\n")


def test_listing_the_tasks_does_not_load_the_age_library():
    code = ("import sys; from tinsnip_tasks.main import program; "
            "program.run(['tinsnip', '--list'], exit=False); print('pyrage' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "secrets.edit" in p.stdout and p.stdout.strip().endswith("False"), p.stdout + p.stderr


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_secrets_file_that_is_no_regular_file_is_refused_without_waiting(tmp_path, kind):
    plain = tmp_path / "gazette-prod.env"
    if kind == "fifo":
        os.mkfifo(plain, 0o600)  # nobody writes to it: a plain open would wait forever
    else:
        plain.mkdir(mode=0o700)
    with pytest.raises(InputError, match="is not a regular file"):
        secrets.opened(plain, None)[1]
