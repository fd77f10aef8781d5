#!/usr/bin/env bash
# Installs the test-only npm packages pinned in DIR/package-lock.json (idempotent: skipped
# when the lock file has not changed since the last install).    usage: npm_install.sh DIR
set -euo pipefail
cd "$1"
stamp=node_modules/.installed-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then exit 0; fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
