"""age-encrypted files (https://age-encryption.org/v1), the format of the ``age`` command: keys
and recipients read from their text, data encrypted and decrypted in memory. Pure: bytes and
text in, bytes and text out; no file is opened here.

The library is pyrage (age's Rust implementation, ``rage``, with prebuilt wheels), imported on
first use so that starting tinsnip does not load it. Errors name the file and the line, never a
key or a decrypted value.
"""
from __future__ import annotations

from ..errors import InputError

#: How an identity file's X25519 keys start (``age-keygen`` writes one per file).
SECRET_KEY_PREFIX = "AGE-SECRET-KEY-1"
#: How an OpenSSH private key starts (age accepts ed25519 and RSA keys as identities).
SSH_KEY_HEAD = "-----BEGIN OPENSSH PRIVATE KEY-----"
SSH_RECIPIENT_TYPES = ("ssh-ed25519", "ssh-rsa")
#: The first line of an ASCII-armored age file.
ARMOR_HEAD = b"-----BEGIN AGE ENCRYPTED FILE-----"
BINARY_HEAD = b"age-encryption.org/v1\n"


def _pyrage():
    try:
        import pyrage
    except ImportError:  # pragma: no cover - pyrage is a dependency of tinsnip
        raise InputError("encrypted secrets need the pyrage package: pip install pyrage") from None
    return pyrage


def identities(text: str, source: str) -> list:
    """The identities of an identity file: ``AGE-SECRET-KEY-1...`` lines (``#`` comments and
    blank lines skipped, as ``age-keygen`` writes them), or one unencrypted OpenSSH private key.

    :raises InputError: naming ``source`` and the line, never the key.
    """
    pyrage = _pyrage()
    if text.lstrip().startswith(SSH_KEY_HEAD):
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except Exception as e:  # the library's errors carry no key material
            raise InputError(f"age identity {source}: not a usable OpenSSH private key ({e};"
                             " a key with a passphrase cannot be used)") from None
    found = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(SECRET_KEY_PREFIX):
            raise InputError(f"age identity {source}, line {n}: not an age secret key (write"
                             f" one {SECRET_KEY_PREFIX}... line, as age-keygen does)")
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise InputError(f"age identity {source}, line {n}: the secret key is damaged")
    if not found:
        raise InputError(f"age identity {source} holds no key; make one with: age-keygen -o"
                         f" {source}")
    return found


def recipients(text: str, source: str) -> list:
    """The recipients of a recipients file (``age -R``'s format): one ``age1...`` or
    ``ssh-ed25519 ...``/``ssh-rsa ...`` public key a line, ``#`` comments and blank lines.

    :raises InputError: naming ``source`` and the line.
    """
    pyrage = _pyrage()
    found = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("age1"):
                found.append(pyrage.x25519.Recipient.from_str(line))
            elif line.split(" ", 1)[0] in SSH_RECIPIENT_TYPES:
                found.append(pyrage.ssh.Recipient.from_str(line))
            else:
                raise ValueError("unknown key type")
        except Exception:
            raise InputError(f"age recipients {source}, line {n}: not an age1... or"
                             f" {'/'.join(SSH_RECIPIENT_TYPES)} public key") from None
    return found


def public(identities_: list) -> list:
    """The recipients of X25519 identities (an SSH key's public half is not derived here: list
    it in the recipients file)."""
    return [i.to_public() for i in identities_ if hasattr(i, "to_public")]


def is_age(data: bytes) -> bool:
    """Whether ``data`` starts like an age file, binary or armored."""
    return data.startswith(BINARY_HEAD) or data.lstrip().startswith(ARMOR_HEAD)


def decrypt(data: bytes, identities_: list, source: str) -> str:
    """The UTF-8 text of an age file (binary or armored).

    :raises InputError: naming ``source`` when it is not an age file, no identity opens it,
        it is damaged, or its text is not UTF-8.
    """
    pyrage = _pyrage()
    if not is_age(data):
        raise InputError(f"{source} is not an age-encrypted file")
    try:
        plain = pyrage.decrypt(data, identities_)
    except pyrage.DecryptError as e:
        if "no matching keys" in str(e).lower():
            raise InputError(f"{source}: none of the keys of tinsnip.age_identity can decrypt"
                             " it (it was encrypted to other recipients)") from None
        raise InputError(f"{source} cannot be decrypted: the file is damaged ({e})") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{source}: its decrypted content is not UTF-8 text") from None


def encrypt(text: str, recipients_: list) -> bytes:
    """``text`` encrypted to every recipient, ASCII-armored (a text file that diffs and reviews
    as one, and that ``age -d`` reads as it is)."""
    if not recipients_:
        raise InputError("no age recipient to encrypt to")
    return _pyrage().encrypt(text.encode("utf-8"), recipients_, armored=True)
