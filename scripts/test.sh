#!/usr/bin/env bash
# Runs every check and test of lablink. Works on a fresh Debian machine as root: installs what is
# missing (git, PostgreSQL, bubblewrap, Chromium and its driver, OpenSSH's client, Node.js and
# npm, a Python venv with dbt, the browser tests' npm packages), starts PostgreSQL if it is down,
# checks that the committed editor bundle is what its build script makes, and fails loudly when
# something cannot be made to work. Quick when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- system packages ----------------------------------------------------------------------------
missing=()
command -v git >/dev/null || missing+=(git)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v python3 >/dev/null || missing+=(python3)
# Every dbt process of a run starts inside bubblewrap.
command -v bwrap >/dev/null || missing+=(bubblewrap)
# gitlab-sim's Git-over-SSH tests drive the real OpenSSH client (and ssh-keygen).
{ command -v ssh && command -v ssh-keygen; } >/dev/null || missing+=(openssh-client)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The accessibility test runs axe-core, an npm package (tests/browser), in Chromium.
{ command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}) and not root: install them first"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${missing[@]}"
fi
command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs"
# The unused-dependency check (pinned: its findings must not change under us).
if [ "$(cargo machete --version 2>/dev/null)" != "0.9.2" ]; then
    say "installing cargo-machete"
    cargo install --quiet --locked cargo-machete --version 0.9.2
fi

# --- PostgreSQL ---------------------------------------------------------------------------------
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
    say "starting PostgreSQL"
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [ -n "$version" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || die "PostgreSQL does not answer on 127.0.0.1:5432"
fi
# The tests connect as postgres without a password (trust on loopback).
if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -Atc 'SELECT 1' >/dev/null 2>&1; then
    say "allowing trusted loopback connections for the tests"
    version=$(ls /etc/postgresql | sort -V | tail -1)
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    psql "postgres://postgres@127.0.0.1:5432/postgres" -Atc 'SELECT 1' >/dev/null \
        || die "cannot connect to PostgreSQL as postgres@127.0.0.1:5432"
fi

# --- dbt ----------------------------------------------------------------------------------------
venv="${LABLINK_DBT_VENV:-$HOME/.cache/lablink/venv}"
if [ ! -x "$venv/bin/dbt" ]; then
    say "creating the dbt venv in $venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r scripts/dbt-requirements.txt
fi
"$venv/bin/dbt" --version >/dev/null || die "dbt in $venv does not run"
export LABLINK_DBT_VENV="$venv"

# --- third-party GitLab clients (gitlab-sim's fidelity test runs python-gitlab unchanged) ------
venv2="${LABLINK_PYCLIENTS_VENV:-$HOME/.cache/lablink/pyclients}"
if ! "$venv2/bin/python" -c 'import gitlab' 2>/dev/null; then
    say "creating the python-gitlab venv in $venv2"
    mkdir -p "$(dirname "$venv2")"
    python3 -m venv "$venv2"
    "$venv2/bin/pip" install --quiet 'python-gitlab>=4,<7'
fi
"$venv2/bin/python" -c 'import gitlab' || die "python-gitlab in $venv2 does not import"
export LABLINK_PYCLIENTS_VENV="$venv2"

# --- the browser tests' npm packages (axe-core), pinned by tests/browser/package-lock.json -----
browser_deps=tests/browser
export LABLINK_AXE_JS="$PWD/$browser_deps/node_modules/axe-core/axe.min.js"
# npm ci only when node_modules is missing or was installed from another lockfile.
lock_sum=$(sha256sum "$browser_deps/package-lock.json" | cut -d' ' -f1)
stamp="$browser_deps/node_modules/.lablink-lock.sha256"
if [ ! -f "$LABLINK_AXE_JS" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
    say "installing the browser tests' npm packages (npm ci in $browser_deps)"
    npm ci --prefix "$browser_deps" --no-audit --no-fund --loglevel=error
    echo "$lock_sum" >"$stamp"
fi
[ -f "$LABLINK_AXE_JS" ] || die "npm ci did not install axe-core: $LABLINK_AXE_JS is missing"

# --- the workspace editor's bundle is exactly what web/editor/build.sh makes of its pinned sources
say "checking the editor bundle (web/editor/build.sh)"
rebuilt=$(mktemp --suffix=.js)
bash web/editor/build.sh "$rebuilt"
cmp -s "$rebuilt" crates/lablink-web/assets/workspace.js \
    || die "crates/lablink-web/assets/workspace.js is not what web/editor/build.sh builds: run it and commit the result"
rm -f "$rebuilt"
export LABLINK_CHROMIUM="$(command -v chromium)"
export LABLINK_CHROMEDRIVER="$(command -v chromedriver)"

# --- checks and tests ---------------------------------------------------------------------------
say "cargo fmt"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
say "unused dependencies"
cargo machete
say "the production binary (no simulator)"
cargo clippy -p lablink --no-default-features -- -D warnings
cargo build -p lablink --no-default-features
target_dir="${CARGO_TARGET_DIR:-target}"
if cargo tree -p lablink --no-default-features -e normal --prefix none | grep -q '^gitlab-sim '; then
    die "the production binary depends on gitlab-sim"
fi
"$target_dir/debug/lablink" demo >/dev/null 2>&1 && die "the production binary has the demo command"
say "cargo test"
cargo test --workspace
say "all checks passed (page screenshots at 1280 and 390 px: $target_dir/screenshots/accessibility)"
