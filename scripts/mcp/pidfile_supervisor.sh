#!/usr/bin/env bash
# The sidecar where systemd does not run it: `python -m mcp.main_mcp all` in the background of the install
# directory, its pid in a file, stopped by that pid with SIGTERM (SIGKILL after DEPLOY_STOP_TIMEOUT seconds).
#
#   scripts/mcp/pidfile_supervisor.sh {start|stop|restart|status}
#
# Environment: DEPLOY_INSTALL_DIR (default: the tree holding this script), DEPLOY_PID_FILE (default
# <install>/state/mcp_sidecar.pid), DEPLOY_STOP_TIMEOUT (default 15, as TimeoutStopSec of the unit),
# DEPLOY_START_CHECK_SECONDS (default 2: how long a fresh sidecar must survive to count as started).
# The sidecar's stdout/stderr go to <install>/logs/mcp_sidecar.out; it logs to LOG_DIR/mcp_servers.log too.
# Exit codes: 0 done / running, 1 could not start or stop, 2 usage, 3 not running (status).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

INSTALL_DIR="$(resolve_install_dir "$(cd -- "$MCP_SCRIPTS_DIR/../.." && pwd)")"
PID_FILE="$(pid_file_path "$INSTALL_DIR")"
OUT_FILE="$INSTALL_DIR/logs/mcp_sidecar.out"
STOP_TIMEOUT="${DEPLOY_STOP_TIMEOUT:-15}"
START_CHECK="${DEPLOY_START_CHECK_SECONDS:-2}"
if ! is_uint "$STOP_TIMEOUT" || ! is_uint "$START_CHECK"; then
  error "DEPLOY_STOP_TIMEOUT and DEPLOY_START_CHECK_SECONDS must be whole seconds," \
    "received '$STOP_TIMEOUT' and '$START_CHECK'"
  exit 2
fi

usage() {
  echo "usage: $0 {start|stop|restart|status}" >&2
  exit 2
}

# Alive and really our sidecar (a recycled pid must never be signalled): not a zombie, right command line.
is_sidecar() {
  local pid="$1" state cmdline
  [ -r "/proc/$pid/stat" ] || return 1
  state="$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ "$state" != "Z" ] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"-m mcp.main_mcp"* ]]
}

pid_from_file() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(head -n 1 "$PID_FILE")"
  is_uint "$pid" || return 1
  printf '%s' "$pid"
}

running_pid() {
  local pid
  pid="$(pid_from_file)" || return 1
  is_sidecar "$pid" || return 1
  printf '%s' "$pid"
}

start() {
  local pid python waited=0 offset
  if pid="$(running_pid)"; then
    info "sidecar already running (pid $pid, pid file $PID_FILE)"
    return 0
  fi
  python="$(venv_python "$INSTALL_DIR")"
  if [ ! -x "$python" ]; then
    fail "sidecar start: no interpreter at $python (install the venv first: deploy_mcp_servers.sh)"
    return 1
  fi
  mkdir -p -- "$(dirname -- "$PID_FILE")" "$INSTALL_DIR/logs"
  # where this start's output begins in the (appended) output file, to show only it on failure
  offset=$(($(stat -c %s -- "$OUT_FILE" 2>/dev/null || echo 0) + 1))
  # setsid: its own session, so a terminal's or a CI job's process-group signals do not reach it;
  # in this non-interactive shell the subshell is no group leader, so setsid execs in place and $! is
  # the sidecar's own pid. 9<&-: the deploy's lock on the install dir must not live on in the sidecar.
  (cd -- "$INSTALL_DIR" && exec setsid "$python" -m mcp.main_mcp all </dev/null >>"$OUT_FILE" 2>&1 9<&-) &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE.tmp"
  mv -f -- "$PID_FILE.tmp" "$PID_FILE"
  while [ "$waited" -lt "$((START_CHECK * 5))" ]; do
    if ! is_sidecar "$pid"; then
      fail "sidecar start: pid $pid exited at once; its output ($OUT_FILE):"
      tail -c "+$offset" -- "$OUT_FILE" | tail -n 20 | sed 's/^/    /'
      rm -f -- "$PID_FILE"
      return 1
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  info "sidecar started (pid $pid, pid file $PID_FILE, output $OUT_FILE)"
}

stop() {
  local pid waited=0
  if ! pid="$(pid_from_file)"; then
    info "sidecar not running under the pid-file supervisor (no pid file at $PID_FILE)"
    rm -f -- "$PID_FILE"
    return 0
  fi
  if ! is_sidecar "$pid"; then
    info "sidecar not running (stale pid file: pid $pid is gone or is not the sidecar)"
    rm -f -- "$PID_FILE"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while is_sidecar "$pid" && [ "$waited" -lt "$((STOP_TIMEOUT * 5))" ]; do
    sleep 0.2
    waited=$((waited + 1))
  done
  if is_sidecar "$pid"; then
    warn "sidecar pid $pid still running ${STOP_TIMEOUT} s after SIGTERM: sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    if is_sidecar "$pid"; then
      fail "sidecar stop: pid $pid survived SIGKILL"
      return 1
    fi
  fi
  rm -f -- "$PID_FILE"
  info "sidecar stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    info "sidecar running (pid $pid)"
    return 0
  fi
  info "sidecar not running"
  return 3
}

[ "$#" -eq 1 ] || usage
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) status ;;
  *) usage ;;
esac
