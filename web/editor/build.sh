#!/usr/bin/env bash
# Rebuilds crates/lablink-web/assets/workspace.js (the workspace's editor) from src/ with the
# packages pinned by package-lock.json. The bundle is committed, so building lablink needs no
# JavaScript toolchain; `scripts/test.sh` runs this and fails if the result differs from the
# committed file.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --silent
out="${1:-../../crates/lablink-web/assets/workspace.js}"
node_modules/.bin/esbuild src/workspace.js --bundle --minify --format=iife --target=es2020 \
    --legal-comments=none --log-level=warning \
    --banner:js="/* lablink workspace editor, built by web/editor/build.sh. Includes CodeMirror 6 (MIT License, Copyright (C) 2018-2021 by Marijn Haverbeke and others, https://codemirror.net) and Lezer (MIT License). */" \
    --outfile="$out"
