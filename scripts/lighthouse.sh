#!/usr/bin/env bash
# Lighthouse's accessibility and best-practices scores of lablink's main pages, measured on
# `lablink demo` with Debian's Chromium, signed in as the demo's admin. Prints one line per page
# and writes each report to $OUT (default: target/lighthouse). Lighthouse is pinned by
# tests/lighthouse/package-lock.json; this script installs it (npm ci) when missing.
# The test command does not run this (its assertion is axe's, in the accessibility test).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-${CARGO_TARGET_DIR:-target}/lighthouse}"
mkdir -p "$out"
chromium_path="$(command -v chromium)" || { echo "chromium is missing (apt-get install chromium)" >&2; exit 1; }

lock_sum=$(sha256sum tests/lighthouse/package-lock.json | cut -d' ' -f1)
stamp=tests/lighthouse/node_modules/.lablink-lock.sha256
if [ ! -x tests/lighthouse/node_modules/.bin/lighthouse ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
    npm ci --prefix tests/lighthouse --no-audit --no-fund --loglevel=error
    echo "$lock_sum" >"$stamp"
fi

cargo build -q -p lablink
bin="${CARGO_TARGET_DIR:-target}/debug/lablink"
log="$out/demo.log"
"$bin" demo >"$log" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    grep -q 'lablink account' "$log" && break
    kill -0 $demo 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 1
done
base=$(sed -n 's#^  lablink     \(http://[^ ]*\)/$#\1#p' "$log")
password=$(sed -n 's#.*password for everyone: ##p' "$log")
email=$(grep -m1 -o '[a-z.]*@[a-z.]*' "$log")
[ -n "$base" ] && [ -n "$password" ] && [ -n "$email" ] || { cat "$log" >&2; exit 1; }

# Sign in as a browser does: the sign-in page's CSRF token, then the form.
jar="$out/cookies.txt"
rm -f "$jar"
csrf=$(curl -s -c "$jar" -b "$jar" "$base/login" | sed -n 's#.*name="csrf_token" value="\([^"]*\)".*#\1#p' | head -1)
curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "csrf_token=$csrf" \
    --data-urlencode "email=$email" --data-urlencode "password=$password" "$base/login"
session=$(awk '$6 == "lablink_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "could not sign in as $email" >&2; exit 1; }
printf '{"Cookie": "lablink_session=%s"}' "$session" >"$out/headers.json"

project=$(curl -s -b "$jar" "$base/projects" | grep -o 'href="/projects/[0-9a-f-]\{36\}"' | head -1 | cut -d'"' -f2)
run=$(curl -s -b "$jar" "$base$project/runs" | grep -o 'href="/runs/[0-9a-f-]\{36\}"' | head -1 | cut -d'"' -f2)
pages=(/login / /projects "$project" "$project/repository" "$project/ci-jobs" "$project/runs"
    "$run" "$project/connection" /profile /profile/linked-accounts /settings /settings/audit
    /settings/integrations/gitlab)

printf '%-44s %14s %15s\n' page accessibility best-practices
for page in "${pages[@]}"; do
    [ -n "$page" ] || continue
    name=$(echo "$page" | tr '/' '_')
    headers=()
    [ "$page" = /login ] || headers=(--extra-headers="$out/headers.json")
    tests/lighthouse/node_modules/.bin/lighthouse "$base$page" --quiet \
        --chrome-path="$chromium_path" \
        --chrome-flags="--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run" \
        --only-categories=accessibility,best-practices "${headers[@]}" \
        --output=json --output-path="$out/report$name.json" >/dev/null 2>>"$out/lighthouse.log"
    python3 - "$out/report$name.json" "$page" <<'EOF'
import json, re, sys
report = json.load(open(sys.argv[1]))
cats = report["categories"]
score = lambda c: round(100 * (cats[c]["score"] or 0))
page = re.sub(r"[0-9a-f-]{36}", "{id}", sys.argv[2])
print(f"{page:<44} {score('accessibility'):>14} {score('best-practices'):>15}")
EOF
done
