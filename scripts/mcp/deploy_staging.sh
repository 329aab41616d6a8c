#!/usr/bin/env bash
# Staging deployment: scripts/deploy_mcp_servers.sh staging (DRY_RUN: pre-flight checks, nothing changed).
#   scripts/mcp/deploy_staging.sh [--monitor-seconds N]
set -euo pipefail
exec "$(dirname -- "${BASH_SOURCE[0]}")/../deploy_mcp_servers.sh" staging "$@"
