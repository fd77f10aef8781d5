#!/usr/bin/env bash
# Installs the test-only npm packages pinned in package-lock.json (idempotent).
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.installed-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then exit 0; fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
