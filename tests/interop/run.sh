#!/usr/bin/env bash
# Interop test: drives `toolshed serve` with the official MCP SDKs
# (TypeScript and Python), over stdio and streamable HTTP, and fails when
# either SDK refuses an answer.
#
# Usage: tests/interop/run.sh PATH-TO-toolshed
#
# Needs Node 20 with npm, and Python 3.11 or later with venv and pip. Installs
# what is missing: node_modules (npm ci, from package-lock.json) and a
# virtual environment in .venv (pip install -r requirements.txt).
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
templates="$repo/host/cli/templates"
cd "$here"

# --- the TypeScript SDK -------------------------------------------------------
# npm keeps its view of the installed tree in node_modules/.package-lock.json;
# a lockfile newer than that means the install is stale.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# --- the Python SDK -----------------------------------------------------------
# The venv remembers the requirements it was installed from; install again
# when they differ.
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv; then
    rm -rf .venv
    echo "$0: $python -m venv failed (on Debian and Ubuntu, install python3-venv)" >&2
    exit 2
  fi
fi
if ! cmp -s requirements.txt .venv/installed-requirements.txt; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/installed-requirements.txt
fi

# --- data directories ---------------------------------------------------------
# One per client and transport, each with the templates the scenarios start
# from. python-dev-v2 is pushed by the clients, in the middle of a scenario.
# The work directory lives under /tmp: the local backend puts agent sockets
# under the data directory, and socket paths must stay short.
work=$(mktemp -d "${TMPDIR:-/tmp}/toolshed-interop.XXXXXX")
for client in ts py; do
  for transport in stdio http; do
    data="$work/$client/$transport/data"
    mkdir -p "$data"
    for template in "$templates/python-dev" "$templates/broken-build" "$here/templates/slow-build"; do
      "$toolshed" --data-dir "$data" template push "$template" >/dev/null
    done
  done
done

# --- the clients --------------------------------------------------------------
status=0
echo "== TypeScript SDK"
node ts_client.mjs "$toolshed" "$work/ts" "$templates/python-dev-v2" || status=1
echo
echo "== Python SDK"
.venv/bin/python py_client.py "$toolshed" "$work/py" "$templates/python-dev-v2" || status=1

# --- nothing left running -----------------------------------------------------
# Every process of this run names the work directory on its command line
# (servers and workspace agents alike). The clients stop every workspace
# they create; anything still running is reported, then ended by its id.
sleep 1
leftover=
if command -v pgrep >/dev/null; then
  leftover=$(pgrep -f -- "$work" || true)
else
  echo "pgrep not found: not checking for processes left running"
fi
if [ -n "$leftover" ]; then
  echo
  echo "processes left running:"
  for pid in $leftover; do
    ps -o pid=,args= -p "$pid" || true
  done
  # shellcheck disable=SC2086
  kill $leftover 2>/dev/null || true
  status=1
fi

echo
if [ "$status" -eq 0 ]; then
  rm -rf "$work"
  echo "interop: passed"
else
  echo "interop: FAILED (servers' logs in $work/*/*/serve.log)"
fi
exit "$status"
