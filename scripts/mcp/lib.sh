# shellcheck shell=bash
# shellcheck disable=SC2034  # the constants and CFG_* variables are used by the scripts that source this file
# Shared by the deployment scripts (sourced, never run): output, paths, settings, and the sidecar's supervisor
# (systemd when it runs the machine and the unit is installed, else scripts/mcp/pidfile_supervisor.sh).
#
# Environment (all optional):
#   DEPLOY_INSTALL_DIR   the install the scripts act on (default: the tree holding the script; for
#                        deploy_mcp_servers.sh /opt/polymarket-copy-bot)
#   DEPLOY_SUPERVISOR    auto (default) | systemd | pidfile
#   DEPLOY_MIN_FREE_MB   free disk space required on the install's filesystem (default 500)

MCP_SCRIPTS_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
MCP_SERVICE="polymarket-mcp.service"
BOT_SERVICE="polymarket-bot.service"
# What a release consists of (copied by the deploy, saved in backups, removed before a restore) ...
MANAGED_PATHS=(core mcp utils config scripts data tests main.py pyproject.toml constraints.txt Makefile README.md
  .env.example DEPLOYED_VERSION)
# ... and the install's own configuration, saved in backups too (never copied from a release).
CONFIG_PATHS=(.env .env.staging)
DEFAULT_MIN_FREE_MB=500
# The helpers import the install's modules: they must not leave __pycache__ behind (DRY_RUN changes nothing).
export PYTHONDONTWRITEBYTECODE=1

# The comment block at the top of script $1 (its documentation), without the '#'.
print_header() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"; }

info() { printf '[INFO] %s\n' "$*"; }
pass() { printf '[PASS] %s\n' "$*"; }
fail() { printf '[FAIL] %s\n' "$*"; }
warn() { printf '[WARN] %s\n' "$*"; }
error() { printf '[ERROR] %s\n' "$*" >&2; }

# The install directory: DEPLOY_INSTALL_DIR, else $1 (a default), made absolute.
resolve_install_dir() {
  local dir="${DEPLOY_INSTALL_DIR:-$1}"
  case "$dir" in
    /*) ;;
    *) dir="$PWD/$dir" ;;
  esac
  printf '%s' "${dir%/}"
}

venv_python() { printf '%s/.venv/bin/python' "$1"; }

# The pid-file supervisor's pid file for install $1 (DEPLOY_PID_FILE overrides it).
pid_file_path() { printf '%s' "${DEPLOY_PID_FILE:-$1/state/mcp_sidecar.pid}"; }

helper() {
  # helper INSTALL_DIR COMMAND ARGS...: run scripts/mcp/deploy_support.py with the install's interpreter
  local install_dir="$1"
  shift
  "$(venv_python "$install_dir")" "$MCP_SCRIPTS_DIR/deploy_support.py" "$@"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_number() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }

# Settings as the sidecar reads them (env + .env of the install), into CFG_* variables. On invalid settings
# CFG_ERROR holds the message and the variables fall back to the environment or the documented defaults,
# so that the HTTP checks can still run.
# load_settings INSTALL_DIR [HEADER_FILE]: with HEADER_FILE (in the caller's private dir), the bearer header
# of DASHBOARD_TOKEN is written there for `curl -H @HEADER_FILE` (0600) when one is set, and removed otherwise;
# CFG_DASHBOARD_TOKEN_SET says which. The token itself never enters a variable or a command line.
load_settings() {
  local install_dir="$1" header_file="${2:-}" output key value header_args=()
  CFG_ERROR=""
  CFG_DASHBOARD_TOKEN_SET=false
  if [ -n "$header_file" ]; then
    # a token of an earlier load is not sent once the settings no longer load or no longer have one
    rm -f -- "$header_file"
    header_args=(--auth-header-file "$header_file")
  fi
  CFG_DASHBOARD_ENABLED="${DASHBOARD_ENABLED:-true}"
  CFG_DASHBOARD_HOST="${DASHBOARD_HOST:-127.0.0.1}"
  CFG_DASHBOARD_PORT="${DASHBOARD_PORT:-8080}"
  CFG_METRICS_ENABLED="${METRICS_ENABLED:-true}"
  CFG_METRICS_PORT="${METRICS_PORT:-9090}"
  CFG_STATE_DIR="$install_dir/state"
  CFG_LOG_DIR="$install_dir/logs"
  CFG_CPU_LIMIT_PERCENT="${MCP_RESOURCE_LIMIT_CPU_PERCENT:-15}"
  CFG_MEMORY_LIMIT_MB="${MCP_RESOURCE_LIMIT_MB:-1000}"
  CFG_CODEBASE_SEARCH_ENABLED=true
  CFG_TESTING_ENABLED=true
  CFG_MONITORING_ENABLED=true
  CFG_ENVIRONMENT="${ENVIRONMENT:-development}"
  if [ ! -x "$(venv_python "$install_dir")" ]; then
    CFG_ERROR="no interpreter at $(venv_python "$install_dir") (is this an install of polymarket-copy-bot?)"
    return 1
  fi
  if ! output="$(umask 077 && helper "$install_dir" settings --root "$install_dir" "${header_args[@]}" 2>&1)"; then
    CFG_ERROR="$output"
    return 1
  fi
  while IFS='=' read -r key value; do
    case "$key" in
      ENVIRONMENT) CFG_ENVIRONMENT="$value" ;;
      DASHBOARD_ENABLED) CFG_DASHBOARD_ENABLED="$value" ;;
      DASHBOARD_HOST) CFG_DASHBOARD_HOST="$value" ;;
      DASHBOARD_PORT) CFG_DASHBOARD_PORT="$value" ;;
      METRICS_ENABLED) CFG_METRICS_ENABLED="$value" ;;
      METRICS_PORT) CFG_METRICS_PORT="$value" ;;
      STATE_DIR) CFG_STATE_DIR="$value" ;;
      LOG_DIR) CFG_LOG_DIR="$value" ;;
      CPU_LIMIT_PERCENT) CFG_CPU_LIMIT_PERCENT="$value" ;;
      MEMORY_LIMIT_MB) CFG_MEMORY_LIMIT_MB="$value" ;;
      CODEBASE_SEARCH_ENABLED) CFG_CODEBASE_SEARCH_ENABLED="$value" ;;
      TESTING_ENABLED) CFG_TESTING_ENABLED="$value" ;;
      MONITORING_ENABLED) CFG_MONITORING_ENABLED="$value" ;;
      DASHBOARD_TOKEN_SET) CFG_DASHBOARD_TOKEN_SET="$value" ;;
      *) ;;
    esac
  done <<<"$output"
  return 0
}

# A host to connect to for a bind address (0.0.0.0 and :: listen everywhere, loopback answers), URL-ready.
url_host() {
  case "$1" in
    0.0.0.0 | "") printf '127.0.0.1' ;;
    :: | "[::]") printf '[::1]' ;;
    *:*)
      local bare="${1#[}"
      printf '[%s]' "${bare%]}"
      ;;
    *) printf '%s' "$1" ;;
  esac
}

dashboard_url() { printf 'http://%s:%s' "$(url_host "$CFG_DASHBOARD_HOST")" "$CFG_DASHBOARD_PORT"; }

# /metrics of the sidecar: METRICS_PORT when enabled, else the dashboard's copy of the same registry.
metrics_url() {
  if [ "$CFG_METRICS_ENABLED" = "true" ]; then
    printf 'http://%s:%s/metrics' "$(url_host "$CFG_DASHBOARD_HOST")" "$CFG_METRICS_PORT"
  else
    printf '%s/metrics' "$(dashboard_url)"
  fi
}

# systemd or pidfile: DEPLOY_SUPERVISOR, or systemd when it is PID 1 and the sidecar's unit is installed.
supervisor_kind() {
  case "${DEPLOY_SUPERVISOR:-auto}" in
    systemd | pidfile) printf '%s' "$DEPLOY_SUPERVISOR" ;;
    auto)
      if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
        && systemctl cat "$MCP_SERVICE" >/dev/null 2>&1; then
        printf 'systemd'
      else
        printf 'pidfile'
      fi
      ;;
    *)
      error "DEPLOY_SUPERVISOR must be auto, systemd or pidfile, received '${DEPLOY_SUPERVISOR}'"
      return 2
      ;;
  esac
}

# sidecar ACTION INSTALL_DIR: start | stop | status through the supervisor in use.
sidecar() {
  local action="$1" install_dir="$2" kind
  kind="$(supervisor_kind)" || return 2
  if [ "$kind" = "systemd" ]; then
    case "$action" in
      start) systemctl start "$MCP_SERVICE" ;;
      stop) systemctl stop "$MCP_SERVICE" ;;
      status) systemctl is-active --quiet "$MCP_SERVICE" ;;
      *) error "unknown sidecar action '$action'" && return 2 ;;
    esac
  else
    DEPLOY_INSTALL_DIR="$install_dir" "$MCP_SCRIPTS_DIR/pidfile_supervisor.sh" "$action"
  fi
}

# Free MB on the filesystem holding $1 (or its nearest existing parent).
free_mb() {
  local dir="$1"
  while [ ! -e "$dir" ] && [ "$dir" != "/" ]; do dir="$(dirname -- "$dir")"; done
  df -Pk -- "$dir" | awk 'NR == 2 { printf "%d", $4 / 1024 }'
}

# The newest backup of an install (names sort by their UTC timestamp), empty when there is none.
latest_backup() {
  local dir="$1/backups/mcp" name
  [ -d "$dir" ] || return 0
  name="$(find "$dir" -maxdepth 1 -type f -name 'mcp_*.tar.gz' -printf '%f\n' | LC_ALL=C sort | tail -n 1)"
  if [ -n "$name" ]; then printf '%s/%s' "$dir" "$name"; fi
  return 0
}
