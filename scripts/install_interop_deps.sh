#!/usr/bin/env bash
# Install the third-party MCP clients that prove our protocol implementation interoperates (SPEC §8):
#   .cache/mcp-sdk/venv   a venv made from the system python3 (never .venv: our package `mcp` shadows the SDK)
#   .cache/mcp-sdk/v1     the official Python SDK 1.x  (pip install --target)
#   .cache/mcp-sdk/v2     the official Python SDK 2.x  (pip install --target)
#   .cache/inspector      the MCP Inspector (npm install --prefix), run with the machine's node. Pinned to
#                         0.21.2: newer releases declare node >= 22, and 0.15.0 (the newest that declares
#                         node 20) has no --header option, so its CLI cannot send our bearer token over HTTP;
#                         0.21.2's CLI runs on node 20 (npm warns about the engines field, nothing more).
# Idempotent: a target whose stamp file is present is not reinstalled. Offline or failing, it says LOUDLY
# what failed, writes the reason to <target>/.install-failed (the interop tests skip with that text) and
# exits 0, so the rest of `make test` still runs.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MCP_INTEROP_CACHE:-$root/.cache}"
system_python="${INTEROP_PYTHON:-python3}"
sdk="$cache/mcp-sdk"
venv="$sdk/venv"
log_dir="$cache/logs"
mkdir -p "$sdk" "$log_dir"

loud_skip() {
  # $1 = target directory, $2 = what failed
  mkdir -p "$1"
  printf '%s\n' "$2" >"$1/.install-failed"
  {
    echo "#####################################################################################"
    echo "# MCP INTEROP DEPENDENCY NOT INSTALLED: $2"
    echo "# the interop tests that need it will SKIP with this reason"
    echo "#####################################################################################"
  } >&2
}

installed() {
  # $1 = target directory, $2 = the requirement it must hold
  [ -f "$1/.installed" ] && [ "$(cat "$1/.installed")" = "$2" ]
}

# --- the SDK's interpreter: a venv of the system python3 ------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  if ! command -v "$system_python" >/dev/null 2>&1; then
    loud_skip "$sdk/v1" "no '$system_python' on PATH to create $venv"
    loud_skip "$sdk/v2" "no '$system_python' on PATH to create $venv"
    venv=""
  elif ! "$system_python" -m venv "$venv" >"$log_dir/mcp-sdk-venv.log" 2>&1; then
    loud_skip "$sdk/v1" "'$system_python -m venv $venv' failed (see $log_dir/mcp-sdk-venv.log)"
    loud_skip "$sdk/v2" "'$system_python -m venv $venv' failed (see $log_dir/mcp-sdk-venv.log)"
    venv=""
  fi
fi

install_sdk() {
  # $1 = major (v1 / v2), $2 = pip requirement
  local target="$sdk/$1" requirement="$2" staging
  if installed "$target" "$requirement"; then
    return 0
  fi
  staging="$sdk/.$1.partial"
  rm -rf "$staging"
  echo "installing the official MCP SDK $requirement into $target" >&2
  if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --target "$staging" \
      "$requirement" >"$log_dir/mcp-sdk-$1.log" 2>&1; then
    # swap in whole, so a half-finished install never looks installed
    rm -rf "$target"
    mv "$staging" "$target"
    printf '%s\n' "$requirement" >"$target/.installed"
  else
    rm -rf "$staging"
    loud_skip "$target" "pip install '$requirement' failed (offline? see $log_dir/mcp-sdk-$1.log: $(tail -n 1 "$log_dir/mcp-sdk-$1.log"))"
  fi
}

if [ -n "$venv" ]; then
  install_sdk v1 'mcp>=1,<2'
  install_sdk v2 'mcp>=2,<3'
fi

# --- the MCP Inspector --------------------------------------------------------------------------------
inspector="$cache/inspector"
inspector_stamp="@modelcontextprotocol/inspector@${MCP_INSPECTOR_VERSION:-0.21.2}"
if ! installed "$inspector" "$inspector_stamp" || [ ! -e "$inspector/node_modules/.bin/mcp-inspector" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    loud_skip "$inspector" "node/npm not found on PATH (apt-get install nodejs npm)"
  else
    mkdir -p "$inspector"
    echo "installing the MCP Inspector into $inspector" >&2
    if npm install --silent --no-audit --no-fund --engine-strict=false --prefix "$inspector" "$inspector_stamp" \
        >"$log_dir/inspector.log" 2>&1 && [ -e "$inspector/node_modules/.bin/mcp-inspector" ]; then
      rm -f "$inspector/.install-failed"
      printf '%s\n' "$inspector_stamp" >"$inspector/.installed"
    else
      loud_skip "$inspector" "npm install $inspector_stamp failed (offline? see $log_dir/inspector.log)"
    fi
  fi
fi
exit 0
