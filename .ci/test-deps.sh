#!/bin/sh
# Debian packages the tests need beyond the lab's (.ci/lab-deps.sh): `age`, the reference
# implementation tinsnip's encrypted secrets files are checked against, and `chromium`, the
# headless browser that loads the site report. Idempotent: installed packages are left alone.
set -eu

PACKAGES="age chromium"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "test-deps: all present ($PACKAGES)"
    exit 0
fi

echo "test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
