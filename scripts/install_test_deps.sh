#!/usr/bin/env bash
# Install what the test suite needs from the system. Tests whose tool is still missing skip loudly.
set -uo pipefail
packages=(ripgrep prometheus shellcheck wrk chromium prometheus-node-exporter nodejs npm systemd curl)
declare -A binary_of=([ripgrep]=rg [prometheus]=promtool [shellcheck]=shellcheck [wrk]=wrk [chromium]=chromium
                      [prometheus-node-exporter]=prometheus-node-exporter [nodejs]=node [npm]=npm
                      [systemd]=systemd-analyze [curl]=curl)
missing=()
for pkg in "${packages[@]}"; do
  command -v "${binary_of[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "WARNING: cannot install ${missing[*]} (needs root and apt-get); the tests that use them will SKIP" >&2
  exit 0
fi
echo "installing system packages for the tests: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "WARNING: apt-get update failed" >&2
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/install_test_deps.log 2>&1; then
  echo "WARNING: apt-get install failed (see /tmp/install_test_deps.log); tests needing ${missing[*]} will SKIP" >&2
fi
exit 0
