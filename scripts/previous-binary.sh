#!/usr/bin/env bash
# Builds the `lablink` binary of an earlier revision (the previous release, for the upgrade
# test) and prints its path. The revision is checked out in a git worktree of its own and built
# in a target directory of its own (`<target>/previous-release`), so neither this checkout nor
# its build is touched; the binary is kept there per commit, and built once.
#
#   bash scripts/previous-binary.sh [<git-revision>]
#
# Without a revision: the last release, which is the commit that last changed
# crates/lablink-store/migrations/RELEASED (written at each release; there are no tags).
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
revision=${1:-$(git -C "$repo" log -1 --format=%H -- crates/lablink-store/migrations/RELEASED)}
[ -n "$revision" ] || { echo "no revision given and RELEASED has no history" >&2; exit 2; }
commit=$(git -C "$repo" rev-parse --verify --quiet "$revision^{commit}") ||
  { echo "no such revision: $revision" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-$repo/target}/previous-release
binary=$target/lablink-$commit

if [ ! -x "$binary" ]; then
  scratch=$(mktemp -d)
  trap 'git -C "$repo" worktree remove --force "$scratch/tree" 2>/dev/null; rm -rf "$scratch"' EXIT
  git -C "$repo" worktree add --detach --quiet "$scratch/tree" "$commit"
  echo "building lablink at $revision ($commit) into $target" >&2
  # Its own lock file, as that release was built; the binary that ships (no demo).
  (cd "$scratch/tree" &&
    CARGO_TARGET_DIR=$target cargo build --locked -p lablink --no-default-features) >&2
  cp "$target/debug/lablink" "$binary.partial"
  mv "$binary.partial" "$binary"
fi
echo "$binary"
