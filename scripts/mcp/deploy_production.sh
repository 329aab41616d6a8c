#!/usr/bin/env bash
# Production deployment: scripts/deploy_mcp_servers.sh production (refused 08:00-16:00 UTC unless --force).
#   scripts/mcp/deploy_production.sh [--force] [--monitor-seconds N] [--dry-run]
set -euo pipefail
exec "$(dirname -- "${BASH_SOURCE[0]}")/../deploy_mcp_servers.sh" production "$@"
