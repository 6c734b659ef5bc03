#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance)
# against `toolshed serve --http`, serving the conformance fixture plugin
# (tests/fixtures/conformance), whose tools, resources and prompts are the
# ones the suite's scenarios call.
#
# Usage: tests/conformance/run.sh PATH-TO-toolshed
#
# Prints the suite's summary, then compares it with `baseline` (one line per
# scenario expected to fail: the scenario, then why). A failing scenario not
# in the baseline fails the run; so does a baseline entry that now passes,
# so the baseline only ever shrinks.
#
# Transports: the suite's client speaks streamable HTTP only (it takes a
# URL), so stdio cannot be driven by it; the stdio transport serves the same
# handler and is covered by the CLI's and the interop suite's stdio tests.
#
# Needs cargo (to build the fixture for wasm32-wasip2) and npx. The suite
# needs Node 22; npx fetches it as the `node` package, so the machine's Node
# may be older.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 PATH-TO-toolshed" >&2
  exit 2
fi
toolshed=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
if [ ! -x "$toolshed" ]; then
  echo "$0: $1 is not an executable" >&2
  exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite="@modelcontextprotocol/conformance@0.1.16"

# --- the fixture plugin -------------------------------------------------------
# Built as the test artifacts build it (same target directory and profile),
# so after `cargo test` this is a cache hit; then packed with its WIT docs.
work=$(mktemp -d "${TMPDIR:-/tmp}/toolshed-conformance.XXXXXX")
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
}
trap cleanup EXIT

(cd "$repo" && CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
  cargo build --quiet --release --target wasm32-wasip2 -p fixture-conformance --target-dir "$repo/target/guests")
mkdir -p "$work/plugins" "$work/data"
"$toolshed" pack "$repo/target/guests/wasm32-wasip2/release/fixture_conformance.wasm" \
  --wit "$repo/tests/fixtures/conformance/wit" --world toolshed:conformance-fixture/conformance@0.1.0 \
  --out "$work/plugins/conformance.wasm" >/dev/null

# --- the server ---------------------------------------------------------------
# On loopback, port chosen by the system; serve names its address on stderr.
TOOLSHED_LOG=warn,toolshed_mcp=info "$toolshed" --data-dir "$work/data" --plugins "$work/plugins" \
  --policy "$here/policy.toml" serve --http 127.0.0.1:0 2>"$work/serve.log" &
server=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/.*serving MCP on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -n 1)
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "$0: toolshed serve exited before it served:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "$0: toolshed serve did not name its address within 60 s" >&2
  exit 1
fi

# --- the suite ----------------------------------------------------------------
if node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' 2>/dev/null; then
  run_suite() { npx -y -p "$suite" -c "conformance server --url $url --suite all -o $work/results"; }
else
  run_suite() { npx -y -p node@22 -p "$suite" -c "conformance server --url $url --suite all -o $work/results"; }
fi
set +e
run_suite >"$work/suite.log" 2>&1
set -e

# The summary: one line per scenario, "✓ NAME: ..." or "✗ NAME: ...".
summary=$(sed -n '/=== SUMMARY ===/,$p' "$work/suite.log")
if [ -z "$summary" ]; then
  echo "$0: the suite printed no summary:" >&2
  tail -n 40 "$work/suite.log" >&2
  exit 1
fi
echo "$summary"

passed=$(grep -c '^✓ ' <<<"$summary" || true)
failed=$(grep -c '^✗ ' <<<"$summary" || true)
echo
echo "scenarios over HTTP: $passed passed, $failed failed"

# --- against the baseline -----------------------------------------------------
status=0
expected=$( (grep -v '^\s*\(#\|$\)' "$here/baseline" || true) | awk '{print $1}')
for scenario in $(sed -n 's/^✗ \([^:]*\):.*/\1/p' <<<"$summary"); do
  if ! grep -qx "$scenario" <<<"$expected"; then
    echo "FAILED, not in the baseline: $scenario"
    # Each scenario's checks are saved as JSON; show why the failed ones failed.
    grep -h '"errorMessage"' "$work"/results/*"$scenario"*/checks.json 2>/dev/null | head -n 4 | sed 's/^ */    /' || true
    status=1
  fi
done
for scenario in $(sed -n 's/^✓ \([^:]*\):.*/\1/p' <<<"$summary"); do
  if grep -qx "$scenario" <<<"$expected"; then
    echo "passes now, take it out of the baseline: $scenario"
    status=1
  fi
done
for scenario in $expected; do
  if ! grep -q "^[✓✗] $scenario:" <<<"$summary"; then
    echo "in the baseline but not run by the suite: $scenario"
    status=1
  fi
done

echo
if [ "$status" -eq 0 ]; then
  rm -rf "$work"
  echo "conformance: as the baseline says"
else
  echo "conformance: FAILED (the suite's output: $work/suite.log; the server's log: $work/serve.log)"
fi
exit "$status"
