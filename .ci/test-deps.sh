#!/bin/sh
# Debian packages the tests need beyond the lab's (.ci/lab-deps.sh installs them the same way):
# `age`, the reference implementation tinsnip's encrypted secrets files are checked against,
# and `chromium`, the headless browser that loads the site report.
exec sh "$(dirname "$0")/lab-deps.sh" age chromium
