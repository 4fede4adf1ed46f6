#!/usr/bin/env bash
# The upgrade test against a real earlier revision: builds that revision's `lablink`
# (scripts/previous-binary.sh), then runs the test `upgrade` of the long soak with it: this
# checkout's `lablink migrate` migrates a PostgreSQL database, and the earlier binary must
# serve pages and the API on it and take a webhook delivery through a dbt run to its commit
# status in gitlab-sim (docs/deploy.md, "Upgrading a fleet"). Needs what `bash scripts/test.sh`
# installs (PostgreSQL on 127.0.0.1:5432, dbt in ~/.cache/lablink/venv).
#
#   bash scripts/upgrade-test.sh [<previous-git-revision>]
#
# Without a revision: the last release (scripts/previous-binary.sh says which).
set -euo pipefail

cd "$(dirname "$0")/.."
binary=$(bash scripts/previous-binary.sh "$@")
echo "previous release: $binary"
LABLINK_SOAK=long LABLINK_PREVIOUS_BINARY=$binary \
  cargo test -p lablink --test it -- upgrade:: --nocapture
