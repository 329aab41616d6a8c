#!/usr/bin/env bash
# Is the monitoring sidecar healthy? One [PASS]/[FAIL] line per check, exit 1 on any failure.
#
#   scripts/mcp/validate_health.sh [--staging|--production|--post-deploy [--bot-was-down]]
#
#   --staging      read the settings as ENVIRONMENT=staging (.env.staging over .env)
#   --production   read the settings as ENVIRONMENT=production
#   --post-deploy  the sidecar was just (re)started: retry every 2 s for up to DEPLOY_HEALTH_WAIT_SECONDS
#                  (default 60) until every check passes; stop early when its supervisor says it died
#   --bot-was-down (with --post-deploy only; deploy_mcp_servers.sh passes it when its pre-flight saw the bot
#                  not running) the bot-derived components main_bot, trade_executor and circuit_breaker are
#                  printed as [WARN] with their real status and left out of the pass/fail decision, which
#                  says so: a sidecar release cannot have caused a bot that was down before it
#
# Checks: settings valid; the overall health verdict of GET /health ([FAIL] only when a component is
# critical: the one verdict of mcp.health, as /health's 503, `status` and the dashboard; `starting` passes);
# the sidecar healthy (`python -m mcp.main_mcp status --json`); its servers
# codebase_search, testing and monitoring running and not critical (status and GET /health); the dashboard
# (GET / → 200 on DASHBOARD_PORT) and /health answering; /metrics → 200 on METRICS_PORT with the sidecar's
# series; the MCP risk integration module importing; the sidecar's CPU below MCP_RESOURCE_LIMIT_CPU_PERCENT
# and its RSS below MCP_RESOURCE_LIMIT_MB (its own figures in /health); DEPLOY_MIN_FREE_MB free on the disk
# of STATE_DIR. Hosts, ports and limits come from the install's settings (environment + .env).
# When the install has a DASHBOARD_TOKEN, every request sends it as `Authorization: Bearer` (beyond loopback
# the sidecar answers nothing without it); a 401 says whether the token was refused or missing.
# Environment: DEPLOY_INSTALL_DIR (default: the tree holding this script), DEPLOY_HEALTH_WAIT_SECONDS,
# DEPLOY_MIN_FREE_MB, DEPLOY_SUPERVISOR (see lib.sh).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

HTTP_TIMEOUT=5
WAIT_SECONDS=0
BOT_WAS_DOWN=0
if [ "$#" -eq 2 ] && [ "$1" = "--post-deploy" ] && [ "$2" = "--bot-was-down" ]; then
  BOT_WAS_DOWN=1
  set -- "$1"
fi
case "${1:-}" in
  "") ;;
  --staging) export ENVIRONMENT=staging ;;
  --production) export ENVIRONMENT=production ;;
  --post-deploy) WAIT_SECONDS="${DEPLOY_HEALTH_WAIT_SECONDS:-60}" ;;
  -h | --help)
    print_header "$0"
    exit 0
    ;;
  --bot-was-down)
    error "--bot-was-down only goes after --post-deploy (scripts/mcp/validate_health.sh --post-deploy --bot-was-down)"
    exit 2
    ;;
  *)
    error "unknown option '$1'; expected --staging, --production or --post-deploy [--bot-was-down]"
    exit 2
    ;;
esac
if [ "$#" -gt 1 ]; then
  error "expected at most one option (or --post-deploy --bot-was-down), received $#: $*"
  exit 2
fi
EXCLUDED_NOTE=""
if [ "$BOT_WAS_DOWN" = "1" ]; then
  EXCLUDED_NOTE=" (excluded main_bot, trade_executor, circuit_breaker: the bot was not running before this deploy)"
fi
MIN_FREE_MB="${DEPLOY_MIN_FREE_MB:-$DEFAULT_MIN_FREE_MB}"
if ! is_uint "$WAIT_SECONDS" || ! is_uint "$MIN_FREE_MB"; then
  error "DEPLOY_HEALTH_WAIT_SECONDS and DEPLOY_MIN_FREE_MB must be whole numbers," \
    "received '$WAIT_SECONDS' and '$MIN_FREE_MB'"
  exit 2
fi
INSTALL_DIR="$(resolve_install_dir "$(cd -- "$MCP_SCRIPTS_DIR/../.." && pwd)")"
PYTHON="$(venv_python "$INSTALL_DIR")"
WORK="$(mktemp -d)"
trap 'rm -rf -- "$WORK"' EXIT
# curl's bearer header (load_settings writes it, 0600, in the private $WORK): the token is never on a command line
AUTH_HEADER="$WORK/auth.header"

# http_get URL FILE: the HTTP status code (000 when nothing answered), body in FILE.
# The bearer goes whenever the install has a DASHBOARD_TOKEN, whatever DASHBOARD_HOST is: the URL's host cannot
# tell whether the sidecar needs it (DASHBOARD_HOST=0.0.0.0 is reached on 127.0.0.1 and needs it), and on
# loopback the sidecar ignores it, so sending it there is harmless. No token set: nothing is sent.
http_get() {
  local auth=()
  if [ "$CFG_DASHBOARD_TOKEN_SET" = "true" ] && [ -s "$AUTH_HEADER" ]; then
    auth=(-H "@$AUTH_HEADER")
  fi
  curl -sS --max-time "$HTTP_TIMEOUT" "${auth[@]}" -o "$2" -w '%{http_code}' -- "$1" 2>"$WORK/curl.err" || true
}

# http_problem CODE: why a request failed, in words; a 401 names DASHBOARD_TOKEN (refused, or none configured).
http_problem() {
  if [ "$1" != "401" ]; then
    printf 'HTTP %s %s' "$1" "$(head -c 200 "$WORK/curl.err")"
  elif [ "$CFG_DASHBOARD_TOKEN_SET" = "true" ]; then
    printf '%s' "HTTP 401: token refused: the sidecar refused the DASHBOARD_TOKEN of the install's settings" \
      " (changed without restarting the sidecar?)"
  else
    printf '%s' "HTTP 401: token missing: the sidecar listens beyond loopback and needs DASHBOARD_TOKEN," \
      " which the install's settings do not have (set it in its .env)"
  fi
}

run_checks() {
  local code disabled=() args=() free
  if load_settings "$INSTALL_DIR" "$AUTH_HEADER"; then
    pass "configuration: settings valid (ENVIRONMENT=$CFG_ENVIRONMENT, install $INSTALL_DIR)"
  else
    fail "configuration: $(printf '%s' "$CFG_ERROR" | head -n 12 | tr '\n' ' ')"
  fi

  rm -f -- "$WORK/status.json" "$WORK/health.json"
  if [ -x "$PYTHON" ]; then
    (cd -- "$INSTALL_DIR" && "$PYTHON" -m mcp.main_mcp status --json >"$WORK/status.json" 2>"$WORK/status.err") || true
  fi

  if [ "$CFG_DASHBOARD_ENABLED" = "true" ]; then
    code="$(http_get "$(dashboard_url)/" "$WORK/page.html")"
    # without a valid token the page answers 303 to /login rather than 401: the same refusal
    if [ "$code" = "303" ]; then code=401; fi
    if [ "$code" = "200" ]; then
      pass "dashboard: GET $(dashboard_url)/ → HTTP 200"
    else
      fail "dashboard: GET $(dashboard_url)/ → $(http_problem "$code")"
    fi
    code="$(http_get "$(dashboard_url)/health" "$WORK/health.json")"
    case "$code" in
      200 | 503) pass "dashboard /health: answers (HTTP $code; 503 means a component is critical)" ;;
      *) fail "dashboard /health: GET $(dashboard_url)/health → $(http_problem "$code")" ;;
    esac
  else
    info "dashboard: skipped (DASHBOARD_ENABLED=false)"
  fi

  if [ "$CFG_METRICS_ENABLED" = "true" ]; then
    code="$(http_get "$(metrics_url)" "$WORK/metrics.txt")"
    if [ "$code" = "200" ] && grep -q '^monitoring_health_checks_total' "$WORK/metrics.txt"; then
      pass "metrics: GET $(metrics_url) → HTTP 200 with the sidecar's series"
    elif [ "$code" = "200" ]; then
      fail "metrics: GET $(metrics_url) → HTTP 200 but no monitoring_health_checks_total (another service?)"
    else
      fail "metrics: GET $(metrics_url) → $(http_problem "$code")"
    fi
  else
    info "metrics: skipped (METRICS_ENABLED=false)"
  fi

  [ "$CFG_CODEBASE_SEARCH_ENABLED" = "true" ] || disabled+=(--disabled codebase_search)
  [ "$CFG_TESTING_ENABLED" = "true" ] || disabled+=(--disabled testing)
  [ "$CFG_MONITORING_ENABLED" = "true" ] || disabled+=(--disabled monitoring)
  [ -s "$WORK/status.json" ] && args+=(--status-json "$WORK/status.json")
  [ -s "$WORK/health.json" ] && args+=(--health-json "$WORK/health.json")
  [ "$BOT_WAS_DOWN" = "0" ] || args+=(--bot-was-down)
  if [ -x "$PYTHON" ]; then
    helper "$INSTALL_DIR" components "${args[@]}" "${disabled[@]}" \
      --cpu-limit "$CFG_CPU_LIMIT_PERCENT" --memory-limit-mb "$CFG_MEMORY_LIMIT_MB" || true
  else
    fail "sidecar: no interpreter at $PYTHON"
  fi

  if [ -x "$PYTHON" ] && (cd -- "$INSTALL_DIR" && "$PYTHON" -c \
    'from core.integrations.mcp_risk_integration import MCPRiskIntegrator, get_mcp_risk_integrator' \
    >/dev/null 2>"$WORK/import.err"); then
    pass "integration: core.integrations.mcp_risk_integration imports"
  else
    fail "integration: core.integrations.mcp_risk_integration does not import: $(tail -n 1 "$WORK/import.err" 2>/dev/null)"
  fi

  free="$(free_mb "$CFG_STATE_DIR")"
  if [ -n "$free" ] && [ "$free" -ge "$MIN_FREE_MB" ]; then
    pass "disk: ${free} MB free for $CFG_STATE_DIR (need $MIN_FREE_MB)"
  else
    fail "disk: ${free:-?} MB free for $CFG_STATE_DIR, need $MIN_FREE_MB (DEPLOY_MIN_FREE_MB)"
  fi
}

# Under the pid-file supervisor: the sidecar we started has died (no point waiting for it).
sidecar_died() {
  local kind
  kind="$(supervisor_kind)" || return 1
  if [ "$kind" = "systemd" ]; then
    systemctl is-failed --quiet "$MCP_SERVICE"
  else
    [ -f "$(pid_file_path "$INSTALL_DIR")" ] || return 1
    if sidecar status "$INSTALL_DIR" >/dev/null; then return 1; fi
  fi
}

deadline=$((SECONDS + WAIT_SECONDS))
while true; do
  report="$(run_checks)"
  failures="$(grep -c '^\[FAIL\]' <<<"$report" || true)"
  if [ "$failures" -eq 0 ] || [ "$SECONDS" -ge "$deadline" ]; then
    break
  fi
  if sidecar_died; then
    info "the sidecar's supervisor reports it is not running: not waiting any longer"
    break
  fi
  info "waiting for the sidecar: $failures check(s) failing, $((deadline - SECONDS)) s left"
  sleep 2
done
printf '%s\n' "$report"
if [ "$failures" -eq 0 ]; then
  pass "All health checks passed$EXCLUDED_NOTE"
  exit 0
fi
fail "$failures health check(s) failed$EXCLUDED_NOTE"
exit 1
