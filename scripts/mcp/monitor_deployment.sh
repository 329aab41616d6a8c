#!/usr/bin/env bash
# Watch the monitoring sidecar for a while after a deployment; exit 1 as soon as it gets worse.
#
#   scripts/mcp/monitor_deployment.sh [--seconds N] [--interval S] [--baseline RATE] [--max-rise F]
#
#   --seconds    how long to watch (default DEPLOY_MONITOR_SECONDS, else 300)
#   --interval   seconds between samples (default DEPLOY_SAMPLE_SECONDS, else 10)
#   --baseline   the error rate before the deployment, 0-1 (deploy_mcp_servers.sh passes the old sidecar's);
#                without it the first sample is the baseline and later samples are judged over the window
#   --max-rise   largest acceptable rise of the error rate in points, 0-1 (default DEPLOY_MAX_ERROR_RATE_RISE,
#                else 0.10)
#
# Error rate, from the sidecar's /metrics (METRICS_PORT, or the dashboard's /metrics when METRICS_ENABLED=false):
#   (monitoring_health_checks_total{status="critical"} + mcp_tool_errors_total)
#     / (monitoring_health_checks_total + mcp_tool_calls_total)
# The rise is judged once the window holds 30 events (about four check rounds: one odd round cannot decide)
# and at the last sample whatever it holds. Fails on: a rise of more than --max-rise, the sidecar's pid dying
# or changing (a crash and restart), /metrics unreadable twice in a row, /metrics answering 401 (DASHBOARD_TOKEN
# refused or missing). The install's DASHBOARD_TOKEN, when set, is sent as a bearer header with every scrape.
# Environment: DEPLOY_INSTALL_DIR (default: the tree holding this script).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_TO_WATCH="${DEPLOY_MONITOR_SECONDS:-300}"
INTERVAL="${DEPLOY_SAMPLE_SECONDS:-10}"
BASELINE=""
MAX_RISE="${DEPLOY_MAX_ERROR_RATE_RISE:-0.10}"

need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then
    error "$1 needs a value"
    exit 2
  fi
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --seconds) need_value "$@" && SECONDS_TO_WATCH="$2" && shift 2 ;;
    --interval) need_value "$@" && INTERVAL="$2" && shift 2 ;;
    --baseline) need_value "$@" && BASELINE="$2" && shift 2 ;;
    --max-rise) need_value "$@" && MAX_RISE="$2" && shift 2 ;;
    -h | --help)
      print_header "$0"
      exit 0
      ;;
    *)
      error "unknown argument '$1' (see --help)"
      exit 2
      ;;
  esac
done
if ! is_number "$SECONDS_TO_WATCH" || ! is_number "$INTERVAL" || ! is_number "$MAX_RISE" \
  || { [ -n "$BASELINE" ] && ! is_number "$BASELINE"; }; then
  error "expected non-negative numbers, received --seconds '$SECONDS_TO_WATCH' --interval '$INTERVAL'" \
    "--max-rise '$MAX_RISE' --baseline '${BASELINE:-none}'"
  exit 2
fi

INSTALL_DIR="$(resolve_install_dir "$(cd -- "$MCP_SCRIPTS_DIR/../.." && pwd)")"
if ! load_settings "$INSTALL_DIR"; then
  fail "configuration: $(printf '%s' "$CFG_ERROR" | head -n 12 | tr '\n' ' ')"
  exit 1
fi
info "monitoring $(metrics_url) (error rate) and $CFG_STATE_DIR/sidecar_status.json (pid)"
args=(monitor --url "$(metrics_url)" --status-file "$CFG_STATE_DIR/sidecar_status.json"
  --seconds "$SECONDS_TO_WATCH" --interval "$INTERVAL" --max-rise "$MAX_RISE" --root "$INSTALL_DIR")
if [ -n "$BASELINE" ]; then
  args+=(--baseline "$BASELINE")
fi
status=0
helper "$INSTALL_DIR" "${args[@]}" || status=$?
exit "$status"
