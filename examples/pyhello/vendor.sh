#!/bin/sh
# Bring uv and every wheel the build needs from PyPI on this side, into vendor/, so the image
# builds on a host that reaches no package index (the build context carries them).
# PYTHON is an interpreter with pip (default python3; Debian's own has no pip: use a venv's).
set -e
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")"
mkdir -p vendor/wheels
"$PYTHON" -m pip download -q --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 -d vendor/wheels uv==0.13.9 gunicorn==27.0.1 flit_core==4.2.0
"$PYTHON" - <<'PY'
import os, pathlib, zipfile
wheel = next(pathlib.Path("vendor/wheels").glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    pathlib.Path("vendor/uv").write_bytes(z.read(name))
os.chmod("vendor/uv", 0o755)
wheel.unlink()
PY
