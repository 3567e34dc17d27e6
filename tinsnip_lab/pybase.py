"""A Debian image with python3 for building Python services in the lab (no registry there).

Built once with ``debootstrap --variant=minbase --include=python3`` and cached as a root
filesystem tarball of its own under /var/cache/tinsnip-lab (the shared lab rootfs is not used
or changed); a lab host turns it into an image with ``docker import``.
"""
import subprocess
import tempfile
from pathlib import Path

from tinsnip_lab import settings
from tinsnip_lab.errors import LabError

IMAGE = "tinsnip-lab/python:bookworm"
TARBALL = settings.CACHE_DIR / f"pybase-{settings.SUITE}-python3.tar.gz"
DROP = ("./usr/share/doc", "./usr/share/man", "./usr/share/info", "./usr/share/locale",
        "./var/cache/apt", "./var/lib/apt/lists", "./dev")


def tarball(log=print) -> Path:
    """The cached root filesystem tarball, built on first use (about a minute)."""
    if TARBALL.is_file():
        return TARBALL
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.CACHE_DIR, prefix="pybase-") as tmp:
        root = Path(tmp) / "root"
        log(f"lab: debootstrap {settings.SUITE} with python3 for {IMAGE} (about a minute)")
        try:
            subprocess.run(["debootstrap", "--variant=minbase", "--include=python3",
                            settings.SUITE, str(root), settings.MIRROR],
                           check=True, capture_output=True)
            part = Path(tmp) / "out.tar.gz"
            subprocess.run(["tar", "-C", str(root), "--numeric-owner",
                            *[f"--exclude={d}" for d in DROP], "-czf", str(part), "."],
                           check=True, capture_output=True)
        except FileNotFoundError as e:
            raise LabError(f"{e.filename} is not installed; run .ci/lab-deps.sh") from e
        except subprocess.CalledProcessError as e:
            raise LabError(f"building {IMAGE} failed: {e.stderr.decode()[-500:]}") from e
        part.rename(TARBALL)
    return TARBALL
