#!/usr/bin/env bash
# Deploy the monitoring sidecar (the MCP servers) of polymarket-copy-bot; trading goes on throughout.
#
#   scripts/deploy_mcp_servers.sh {staging|production} [--force] [--monitor-seconds N] [--dry-run]
#
#   staging     DRY_RUN: the pre-flight checks, then what a deploy would do, printed; nothing is changed
#   production  refused from 08:00 to 16:00 UTC (market hours) unless --force
#
# Steps: pre-flight (disk space; the install's interpreter and dependencies; the release imports and its
# settings validate against the install's configuration; bot status; the running sidecar and its error rate)
# → backup (backups/mcp/mcp_<UTC time>.tar.gz: the install's code and .env files) → install (the release's
# files copied over the old ones, missing dependencies pip-installed into .venv) → restart (the systemd unit
# when systemd runs the machine and the unit is installed, else scripts/mcp/pidfile_supervisor.sh) →
# validate_health.sh --post-deploy (with --bot-was-down when the pre-flight saw the bot not running) →
# monitor_deployment.sh for --monitor-seconds → rollback_mcp.sh if health
# fails or the error rate rises by more than DEPLOY_MAX_ERROR_RATE_RISE (0.10 = 10 points; definition in
# monitor_deployment.sh). The bot is never stopped: it keeps the code it loaded until you restart it.
# A bot already down before the deploy is not the release's doing: its components (main_bot, trade_executor,
# circuit_breaker) are then shown as [WARN] and left out of the post-deploy verdict, so the new sidecar (which
# alerts on the dead bot) is not rolled back for it. A bot running before and dead after still fails the deploy,
# and so does a dead bot the pre-flight could not look at (a new install, or settings that do not load).
#
# Environment:
#   DEPLOY_INSTALL_DIR          install to update (default /opt/polymarket-copy-bot, as in the systemd units)
#   DEPLOY_SOURCE_DIR           release to deploy (default: the tree holding this script)
#   DEPLOY_NOW_HOUR             use this UTC hour (0-23) instead of the clock (tests; rehearsing a window)
#   DEPLOY_MONITOR_SECONDS      how long to monitor (default 300; --monitor-seconds wins)
#   DEPLOY_SAMPLE_SECONDS       seconds between monitoring samples (default 10)
#   DEPLOY_MAX_ERROR_RATE_RISE  rollback threshold, points of error rate 0-1 (default 0.10)
#   DEPLOY_HEALTH_WAIT_SECONDS  how long the new sidecar gets to become healthy (default 60)
#   DEPLOY_MIN_FREE_MB          free disk space required (default 500)
#   DEPLOY_KEEP_BACKUPS         backups kept, oldest removed first (default 10)
#   DEPLOY_SUPERVISOR           auto | systemd | pidfile (default auto)
#   DEPLOY_BASE_PYTHON          interpreter that creates the venv of a new install (default python3)
#   DEPLOY_SERVICE_USER         owner given to state/ and logs/ when run as root (default polymarket)
#   DRY_RUN=1                   same as --dry-run
# Exit codes: 0 deployed (or the dry run passed); 1 pre-flight failed, or the deploy failed and was rolled
# back; 2 bad arguments; 3 refused during market hours; 4 the deploy failed AND the rollback failed.
set -euo pipefail

# shellcheck source=SCRIPTDIR/mcp/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/mcp/lib.sh"

MARKET_OPEN_HOUR=8
MARKET_CLOSE_HOUR=16

usage() {
  echo "usage: $0 {staging|production} [--force] [--monitor-seconds N] [--dry-run]" >&2
  echo "       $0 --help" >&2
  exit 2
}

TARGET=""
FORCE=0
DRY_RUN="${DRY_RUN:-0}"
MONITOR_SECONDS="${DEPLOY_MONITOR_SECONDS:-300}"
while [ "$#" -gt 0 ]; do
  case "$1" in
    staging | production)
      [ -z "$TARGET" ] || usage
      TARGET="$1"
      shift
      ;;
    --force) FORCE=1 && shift ;;
    --dry-run) DRY_RUN=1 && shift ;;
    --monitor-seconds)
      [ "$#" -ge 2 ] || usage
      MONITOR_SECONDS="$2"
      shift 2
      ;;
    -h | --help)
      print_header "$0"
      exit 0
      ;;
    *)
      error "unknown argument '$1'"
      usage
      ;;
  esac
done
[ -n "$TARGET" ] || usage
if [ "$TARGET" = "staging" ]; then
  DRY_RUN=1
  # the staging configuration (.env.staging over .env) is the one the release is checked against
  export ENVIRONMENT=staging
fi
[ "$DRY_RUN" = "0" ] || DRY_RUN=1

SAMPLE_SECONDS="${DEPLOY_SAMPLE_SECONDS:-10}"
MAX_RISE="${DEPLOY_MAX_ERROR_RATE_RISE:-0.10}"
MIN_FREE_MB="${DEPLOY_MIN_FREE_MB:-$DEFAULT_MIN_FREE_MB}"
KEEP_BACKUPS="${DEPLOY_KEEP_BACKUPS:-10}"
BASE_PYTHON="${DEPLOY_BASE_PYTHON:-python3}"
SERVICE_USER="${DEPLOY_SERVICE_USER:-polymarket}"
NOW_HOUR="${DEPLOY_NOW_HOUR:-$(date -u +%H)}"
for pair in "--monitor-seconds:$MONITOR_SECONDS" "DEPLOY_MIN_FREE_MB:$MIN_FREE_MB" \
  "DEPLOY_KEEP_BACKUPS:$KEEP_BACKUPS" "DEPLOY_NOW_HOUR:$NOW_HOUR"; do
  if ! is_uint "${pair#*:}"; then
    error "${pair%%:*} must be a whole number, received '${pair#*:}'"
    exit 2
  fi
done
if ! is_number "$SAMPLE_SECONDS" || ! is_number "$MAX_RISE"; then
  error "DEPLOY_SAMPLE_SECONDS and DEPLOY_MAX_ERROR_RATE_RISE must be numbers, received '$SAMPLE_SECONDS' '$MAX_RISE'"
  exit 2
fi
NOW_HOUR=$((10#$NOW_HOUR))
if [ "$NOW_HOUR" -gt 23 ]; then
  error "DEPLOY_NOW_HOUR must be an hour 0-23, received $NOW_HOUR"
  exit 2
fi
SUPERVISOR="$(supervisor_kind)" || exit 2

INSTALL_DIR="$(resolve_install_dir /opt/polymarket-copy-bot)"
SOURCE_DIR="${DEPLOY_SOURCE_DIR:-$MCP_SCRIPTS_DIR/../..}"
if [ ! -d "$SOURCE_DIR" ]; then
  error "DEPLOY_SOURCE_DIR $SOURCE_DIR is not a directory"
  exit 2
fi
SOURCE_DIR="$(cd -- "$SOURCE_DIR" && pwd)"
PYTHON="$(venv_python "$INSTALL_DIR")"
RELEASE_FILES=()
for path in "${MANAGED_PATHS[@]}"; do
  [ "$path" = "DEPLOYED_VERSION" ] || RELEASE_FILES+=("$path")
done
PRE_FAILURES=0
DEFERRED_RELEASE_CHECK=0
BASELINE=""
BOT_PID=""
# running | down | unknown: what the pre-flight saw of the bot; only "down" excludes the bot-derived components
BOT_BEFORE="unknown"
BACKUP=""

pre_fail() {
  fail "$*"
  PRE_FAILURES=$((PRE_FAILURES + 1))
}

would() { info "DRY_RUN: would $*"; }

check_market_hours() {
  if [ "$NOW_HOUR" -lt "$MARKET_OPEN_HOUR" ] || [ "$NOW_HOUR" -ge "$MARKET_CLOSE_HOUR" ]; then
    pass "deploy window: ${NOW_HOUR}:00 UTC is outside market hours (${MARKET_OPEN_HOUR}:00-${MARKET_CLOSE_HOUR}:00 UTC)"
  elif [ "$TARGET" != "production" ]; then
    info "deploy window: ${NOW_HOUR}:00 UTC is within market hours; allowed for $TARGET"
  elif [ "$DRY_RUN" = "1" ]; then
    info "deploy window: ${NOW_HOUR}:00 UTC is within market hours: a real production deploy would be refused"
  elif [ "$FORCE" = "1" ]; then
    warn "deploy window: ${NOW_HOUR}:00 UTC is within market hours; going on because of --force"
  else
    error "production deploys are refused from ${MARKET_OPEN_HOUR}:00 to ${MARKET_CLOSE_HOUR}:00 UTC (now" \
      "${NOW_HOUR}:00 UTC): deploy after the close, or pass --force if this cannot wait"
    exit 3
  fi
}

preflight() {
  local free missing path status
  free="$(free_mb "$INSTALL_DIR")"
  if [ -n "$free" ] && [ "$free" -ge "$MIN_FREE_MB" ]; then
    pass "pre-flight disk: ${free} MB free for $INSTALL_DIR (need $MIN_FREE_MB)"
  else
    pre_fail "pre-flight disk: ${free:-?} MB free for $INSTALL_DIR, need $MIN_FREE_MB (DEPLOY_MIN_FREE_MB)"
  fi

  for path in mcp/main_mcp.py config/settings.py core/integrations/mcp_risk_integration.py pyproject.toml; do
    if [ ! -f "$SOURCE_DIR/$path" ]; then
      pre_fail "pre-flight release: $SOURCE_DIR has no $path (is DEPLOY_SOURCE_DIR a polymarket-copy-bot tree?)"
    fi
  done
  [ "$PRE_FAILURES" -eq 0 ] || return 0

  if [ -x "$PYTHON" ] && "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    pass "pre-flight interpreter: $PYTHON ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"
    if ! missing="$(helper "$INSTALL_DIR" missing-deps --root "$SOURCE_DIR" 2>&1)"; then
      pre_fail "pre-flight dependencies: $missing"
    elif [ -z "$missing" ]; then
      pass "pre-flight dependencies: every requirement of $SOURCE_DIR/pyproject.toml is installed"
      if ! helper "$INSTALL_DIR" release-check --source "$SOURCE_DIR" --root "$INSTALL_DIR"; then
        pre_fail "pre-flight release: the release cannot run with this install's configuration (see above)"
      fi
    else
      info "pre-flight dependencies: to install into $INSTALL_DIR/.venv: $(tr '\n' ' ' <<<"$missing")"
      DEFERRED_RELEASE_CHECK=1
    fi
  elif [ -e "$PYTHON" ]; then
    pre_fail "pre-flight interpreter: $PYTHON is not a working Python >= 3.11"
  elif command -v "$BASE_PYTHON" >/dev/null 2>&1 \
    && "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    info "pre-flight interpreter: new install: $INSTALL_DIR/.venv will be created with $BASE_PYTHON"
    DEFERRED_RELEASE_CHECK=1
  else
    pre_fail "pre-flight interpreter: no $PYTHON and no Python >= 3.11 as '$BASE_PYTHON' to create it"
  fi

  if [ "$SUPERVISOR" = "systemd" ] && [ "$DRY_RUN" = "0" ] && [ "$(id -u)" -ne 0 ]; then
    pre_fail "pre-flight supervisor: restarting $MCP_SERVICE needs root (sudo)"
  fi
  info "pre-flight supervisor: $SUPERVISOR"
  if [ "$SUPERVISOR" = "systemd" ]; then
    # the resource limits that keep the sidecar out of trading's way come from the installed unit
    status="$(systemctl show -p CPUQuotaPerSecUSec -p MemoryMax --value "$MCP_SERVICE" 2>/dev/null | tr '\n' ' ')"
    case "$status" in
      *infinity* | " " | "")
        pre_fail "pre-flight limits: $MCP_SERVICE lacks CPUQuota/MemoryMax (${status:-unknown}):" \
          "install scripts/systemd/polymarket-mcp.service and run systemctl daemon-reload"
        ;;
      *) pass "pre-flight limits: $MCP_SERVICE CPUQuotaPerSecUSec MemoryMax = $status" ;;
    esac
  else
    warn "pre-flight limits: no systemd unit, so no CPUQuota/MemoryMax; the sidecar runs at nice 10 with idle I/O" \
      "and its MCP circuit breaker trips above MCP_RESOURCE_LIMIT_CPU_PERCENT / MCP_RESOURCE_LIMIT_MB"
  fi

  if [ "$SUPERVISOR" = "systemd" ]; then
    status="$(systemctl is-active "$BOT_SERVICE" 2>/dev/null || true)"
    info "pre-flight bot: $BOT_SERVICE is ${status:-unknown} (this deploy does not touch it)"
  fi
  if [ ! -f "$INSTALL_DIR/config/settings.py" ]; then
    info "pre-flight: no current install at $INSTALL_DIR (no config/settings.py): no bot or sidecar to look at"
  elif [ -x "$PYTHON" ] && load_settings "$INSTALL_DIR"; then
    if status="$(helper "$INSTALL_DIR" bot-status --state-dir "$CFG_STATE_DIR")"; then
      BOT_PID="$(sed -n 's/^pid \([0-9]*\),.*/\1/p' <<<"$status")"
      BOT_BEFORE="running"
      info "pre-flight bot: running: $status (this deploy does not touch it)"
    else
      BOT_BEFORE="down"
      warn "pre-flight bot: not running: $status (the sidecar deploy goes on; trading is down anyway; the" \
        "post-deploy validation shows main_bot, trade_executor, circuit_breaker as [WARN] and does not judge them)"
    fi
    check_current_sidecar
  else
    warn "pre-flight: the settings of the current install do not load, so its bot and sidecar cannot be" \
      "looked at: $(head -n 3 <<<"$CFG_ERROR" | tr '\n' ' ')"
  fi
}

check_current_sidecar() {
  local pid managed="" rate_line
  if ! pid="$(helper "$INSTALL_DIR" sidecar-pid --state-dir "$CFG_STATE_DIR")"; then
    info "pre-flight sidecar: not running: no baseline error rate (the first sample will be the baseline)"
    return 0
  fi
  if [ "$SUPERVISOR" = "pidfile" ]; then
    managed="$(head -n 1 "$(pid_file_path "$INSTALL_DIR")" 2>/dev/null || true)"
    if [ "$managed" != "$pid" ]; then
      pre_fail "pre-flight sidecar: pid $pid was not started by the pid-file supervisor (the bot's own child, or" \
        "started by hand?): stop it, or run the bot with MCP_INTEGRATION_ENABLED=false, then deploy again"
      return 0
    fi
  fi
  if rate_line="$(helper "$INSTALL_DIR" error-rate --url "$(metrics_url)" --root "$INSTALL_DIR" 2>&1)"; then
    BASELINE="$(sed -n 's/^rate=\([0-9.]*\) .*/\1/p' <<<"$rate_line")"
    info "pre-flight sidecar: running (pid $pid); error rate before: $rate_line"
  else
    info "pre-flight sidecar: running (pid $pid); no baseline error rate: $rate_line"
  fi
}

make_backup() {
  local dir="$INSTALL_DIR/backups/mcp" entries=() path stamp target count
  if [ ! -f "$INSTALL_DIR/mcp/main_mcp.py" ]; then
    info "backup: new install (no mcp/main_mcp.py), nothing to roll back to: a failed deploy stops the sidecar"
    return 0
  fi
  for path in "${MANAGED_PATHS[@]}" "${CONFIG_PATHS[@]}"; do
    if [ -e "$INSTALL_DIR/$path" ]; then entries+=("$path"); fi
  done
  mkdir -p -- "$dir"
  chmod 0700 -- "$INSTALL_DIR/backups" "$dir"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  while [ -e "$dir/mcp_$stamp.tar.gz" ]; do
    sleep 1
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  done
  target="$dir/mcp_$stamp.tar.gz"
  # umask 077: the archive holds .env (tokens, keys)
  if ! (umask 077 && tar -czf "$target.tmp" -C "$INSTALL_DIR" --exclude=__pycache__ --exclude='*.pyc' \
    -- "${entries[@]}") || ! tar -tzf "$target.tmp" >/dev/null; then
    rm -f -- "$target.tmp"
    error "backup: could not write $target; nothing was changed"
    exit 1
  fi
  mv -f -- "$target.tmp" "$target"
  BACKUP="$target"
  pass "backup: $target ($(du -h -- "$target" | cut -f1); ${entries[*]})"
  count=0
  while IFS= read -r path; do
    count=$((count + 1))
    if [ "$count" -gt "$KEEP_BACKUPS" ]; then
      rm -f -- "$dir/$path"
      info "backup: removed old $path (DEPLOY_KEEP_BACKUPS=$KEEP_BACKUPS)"
    fi
  done < <(find "$dir" -maxdepth 1 -type f -name 'mcp_*.tar.gz' -printf '%f\n' | LC_ALL=C sort -r)
}

prepare_venv() {
  local missing
  if [ ! -x "$PYTHON" ]; then
    info "install: creating $INSTALL_DIR/.venv with $BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$INSTALL_DIR/.venv"
  fi
  missing="$(helper "$INSTALL_DIR" missing-deps --root "$SOURCE_DIR")"
  if [ -n "$missing" ]; then
    info "install: pip install into $INSTALL_DIR/.venv: $(tr '\n' ' ' <<<"$missing")"
    local requirements=()
    mapfile -t requirements <<<"$missing"
    local constraints=()
    [ -f "$SOURCE_DIR/constraints.txt" ] && constraints=(-c "$SOURCE_DIR/constraints.txt")
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${constraints[@]}" -- "${requirements[@]}"
  fi
  pass "install: dependencies of the release are installed"
  if [ "$DEFERRED_RELEASE_CHECK" = "1" ]; then
    if ! helper "$INSTALL_DIR" release-check --source "$SOURCE_DIR" --root "$INSTALL_DIR"; then
      error "the release cannot run with this install's configuration (see above); the running sidecar is untouched"
      exit 1
    fi
  fi
}

install_release() {
  local path present=() commit
  if [ "$SOURCE_DIR" = "$INSTALL_DIR" ]; then
    info "install: the release is the install itself: no files to copy"
  else
    for path in "${RELEASE_FILES[@]}"; do
      rm -rf -- "${INSTALL_DIR:?}/$path"
      [ -e "$SOURCE_DIR/$path" ] && present+=("$path")
    done
    tar -C "$SOURCE_DIR" -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache -- "${present[@]}" \
      | tar -C "$INSTALL_DIR" -xf - --no-same-owner
    pass "install: copied ${present[*]} from $SOURCE_DIR"
  fi
  commit="$(git -C "$SOURCE_DIR" rev-parse --verify --quiet HEAD 2>/dev/null || echo unknown)"
  printf 'source=%s\ncommit=%s\ndeployed_at=%s\ntarget=%s\n' "$SOURCE_DIR" "$commit" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$TARGET" >"$INSTALL_DIR/DEPLOYED_VERSION"
  mkdir -p -- "$INSTALL_DIR/state" "$INSTALL_DIR/logs"
  if [ "$(id -u)" -eq 0 ] && id -u "$SERVICE_USER" >/dev/null 2>&1; then
    # root owns the code, the service's group may read it (whatever the release's umask was), the service
    # owns what it writes: state/ and logs/
    local group
    group="$(id -gn "$SERVICE_USER")"
    (cd -- "$INSTALL_DIR" && chgrp -R -- "$group" "${present[@]}" DEPLOYED_VERSION \
      && chmod -R g+rX,g-w,o-rwx -- "${present[@]}" DEPLOYED_VERSION)
    chown -R -- "$SERVICE_USER:$group" "$INSTALL_DIR/state" "$INSTALL_DIR/logs"
    info "install: code readable by group $group, state/ and logs/ owned by $SERVICE_USER"
  fi
}

rollback() {
  local why="$1"
  error "deploy failed: $why"
  if [ -z "$BACKUP" ]; then
    sidecar stop "$INSTALL_DIR" || true
    error "new install: there is no previous version to roll back to; the sidecar is stopped (trading goes on)"
    exit 1
  fi
  info "rolling back to $BACKUP"
  if DEPLOY_INSTALL_DIR="$INSTALL_DIR" "$MCP_SCRIPTS_DIR/rollback_mcp.sh" --backup "$BACKUP"; then
    error "deploy of $SOURCE_DIR failed and was rolled back to $BACKUP; the previous sidecar runs again"
    exit 1
  fi
  error "ROLLBACK FAILED: the sidecar of $INSTALL_DIR is down or unhealthy; trading is unaffected. Restore by hand:" \
    "tar -xzf $BACKUP -C $INSTALL_DIR, then restart the sidecar"
  exit 4
}

report_bot() {
  [ -n "$BOT_PID" ] || return 0
  if kill -0 "$BOT_PID" 2>/dev/null; then
    pass "trading unaffected: bot pid $BOT_PID still running"
  else
    warn "bot pid $BOT_PID is gone; this deploy does not touch it: look at $BOT_SERVICE / logs/polymarket_bot.log"
  fi
}

title="$(tr '[:lower:]' '[:upper:]' <<<"${TARGET:0:1}")${TARGET:1}"
info "$title deployment of $SOURCE_DIR into $INSTALL_DIR (DRY_RUN=$DRY_RUN, supervisor $SUPERVISOR)"
check_market_hours
LOCKED=0
# one deployment at a time per install: an exclusive lock on the install directory itself
lock_install() {
  [ "$LOCKED" = "0" ] && [ -d "$INSTALL_DIR" ] || return 0
  exec 9<"$INSTALL_DIR"
  if ! flock -n 9; then
    error "another deployment is running on $INSTALL_DIR"
    exit 1
  fi
  LOCKED=1
}
lock_install
if [ "$SOURCE_DIR" = "$INSTALL_DIR" ]; then
  warn "the release is the install itself: the backup will hold the code already in place, so a rollback" \
    "restores the configuration only"
fi
preflight
if [ "$PRE_FAILURES" -gt 0 ]; then
  error "pre-flight failed ($PRE_FAILURES problem(s)): nothing was changed"
  exit 1
fi

if [ "$DRY_RUN" = "1" ]; then
  would "back up ${MANAGED_PATHS[*]} ${CONFIG_PATHS[*]} of $INSTALL_DIR to $INSTALL_DIR/backups/mcp/mcp_<UTC>.tar.gz"
  [ -x "$PYTHON" ] || would "create $INSTALL_DIR/.venv with $BASE_PYTHON"
  would "install the missing dependencies of $SOURCE_DIR/pyproject.toml into $INSTALL_DIR/.venv"
  would "stop the sidecar ($SUPERVISOR), replace ${RELEASE_FILES[*]} with those of $SOURCE_DIR, start it"
  validate_args=(--post-deploy)
  [ "$BOT_BEFORE" != "down" ] || validate_args+=(--bot-was-down)
  would "run validate_health.sh ${validate_args[*]}, then monitor_deployment.sh for ${MONITOR_SECONDS} s" \
    "(baseline ${BASELINE:-first sample}, max rise $MAX_RISE)"
  would "roll back with rollback_mcp.sh if either fails"
  info "DRY_RUN mode completed: no changes made"
  info "$title deployment completed (DRY_RUN)"
  pass "All validations passed"
  exit 0
fi

mkdir -p -- "$INSTALL_DIR"
lock_install
make_backup
prepare_venv
if ! sidecar stop "$INSTALL_DIR"; then
  error "could not stop the running sidecar; nothing was replaced"
  exit 1
fi
install_release
if ! sidecar start "$INSTALL_DIR"; then
  rollback "the new sidecar did not start"
fi
validate_args=(--post-deploy)
[ "$BOT_BEFORE" != "down" ] || validate_args+=(--bot-was-down)
if ! DEPLOY_INSTALL_DIR="$INSTALL_DIR" "$MCP_SCRIPTS_DIR/validate_health.sh" "${validate_args[@]}"; then
  rollback "the new sidecar is not healthy"
fi
if [ "$MONITOR_SECONDS" -gt 0 ]; then
  monitor_args=(--seconds "$MONITOR_SECONDS" --interval "$SAMPLE_SECONDS" --max-rise "$MAX_RISE")
  [ -n "$BASELINE" ] && monitor_args+=(--baseline "$BASELINE")
  if ! DEPLOY_INSTALL_DIR="$INSTALL_DIR" "$MCP_SCRIPTS_DIR/monitor_deployment.sh" "${monitor_args[@]}"; then
    rollback "the sidecar got worse while monitored"
  fi
else
  warn "monitoring skipped (--monitor-seconds 0)"
fi
report_bot
info "$title deployment completed ($(tr '\n' ' ' <"$INSTALL_DIR/DEPLOYED_VERSION"))"
if [ "$BOT_BEFORE" = "down" ]; then
  pass "All health checks passed (excluded main_bot, trade_executor, circuit_breaker: the bot was not running" \
    "before this deploy)"
else
  pass "All health checks passed"
fi
