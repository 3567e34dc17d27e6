#!/bin/sh
# Install the Debian packages the outer machine needs to build and run the lab, plus
# python3-venv for the project's virtual environment (Debian's python3 refuses pip installs).
# Idempotent: packages already installed are left alone.
set -eu

PACKAGES="python3-venv debootstrap iproute2 openssh-client util-linux mount zstd tar curl ca-certificates procps psmisc kmod systemd-container"

missing=""
[ $# -eq 0 ] || PACKAGES="$*"  # packages given as arguments instead (.ci/test-deps.sh)
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "lab-deps: all present ($PACKAGES)"
    exit 0
fi

echo "lab-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
