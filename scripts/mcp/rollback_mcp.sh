#!/usr/bin/env bash
# Put the install back as it was before the last deployment and restart the sidecar on it.
#
#   scripts/mcp/rollback_mcp.sh [--backup FILE]
#
# Restores FILE, or the newest backups/mcp/mcp_<UTC time>.tar.gz of the install: stops the sidecar, removes
# the release's files (code, scripts, tests, DEPLOYED_VERSION; never state/, logs/, backups/ or .venv),
# extracts the archive (as `tar -xzf backups/mcp/mcp_<ts>.tar.gz -C <install dir>` would, .env included),
# starts the sidecar again (systemd unit, else the pid-file supervisor) and runs validate_health.sh
# --post-deploy. The bot is not touched: restart polymarket-bot yourself at a quiet moment if core/ changed.
# Environment: DEPLOY_INSTALL_DIR (default: the tree holding this script), DEPLOY_SUPERVISOR (see lib.sh).
# Exit codes: 0 restored and healthy, 1 nothing to restore / restore failed / unhealthy after it, 2 usage.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

BACKUP=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --backup)
      if [ "$#" -lt 2 ] || [ -z "$2" ]; then
        error "--backup needs a file"
        exit 2
      fi
      BACKUP="$2"
      shift 2
      ;;
    -h | --help)
      print_header "$0"
      exit 0
      ;;
    *)
      error "unknown argument '$1' (usage: $0 [--backup FILE])"
      exit 2
      ;;
  esac
done

INSTALL_DIR="$(resolve_install_dir "$(cd -- "$MCP_SCRIPTS_DIR/../.." && pwd)")"
if [ -z "$BACKUP" ]; then
  BACKUP="$(latest_backup "$INSTALL_DIR")"
  if [ -z "$BACKUP" ]; then
    error "no backup to restore: $INSTALL_DIR/backups/mcp/ holds no mcp_*.tar.gz (deploy_mcp_servers.sh makes one)"
    exit 1
  fi
fi
if [ ! -f "$BACKUP" ]; then
  error "backup $BACKUP does not exist"
  exit 1
fi

# Only the release's own top-level entries, relative and without '..': an archive that would write elsewhere
# (or over state/) is refused before anything is stopped.
if ! entries="$(tar -tzf "$BACKUP" 2>&1)"; then
  error "backup $BACKUP is not a readable tar.gz: $entries"
  exit 1
fi
allowed=" ${MANAGED_PATHS[*]} ${CONFIG_PATHS[*]} "
while IFS= read -r entry; do
  entry="${entry#./}"
  top="${entry%%/*}"
  if [ -z "$entry" ] || [[ "$entry" == /* ]] || [[ "/$entry/" == */../* ]] || [[ "$allowed" != *" $top "* ]]; then
    error "backup $BACKUP holds '$entry', outside what a backup may restore (${MANAGED_PATHS[*]} ${CONFIG_PATHS[*]})"
    exit 1
  fi
done <<<"$entries"

info "rolling back $INSTALL_DIR to $BACKUP"
if [ -f "$INSTALL_DIR/DEPLOYED_VERSION" ]; then
  info "replacing: $(tr '\n' ' ' <"$INSTALL_DIR/DEPLOYED_VERSION")"
fi
if ! sidecar stop "$INSTALL_DIR"; then
  error "could not stop the sidecar; not restoring over a running process"
  exit 1
fi
for path in "${MANAGED_PATHS[@]}"; do
  rm -rf -- "${INSTALL_DIR:?}/$path"
done
if ! tar -xzf "$BACKUP" -C "$INSTALL_DIR" --no-same-owner; then
  error "extracting $BACKUP into $INSTALL_DIR failed: the install is incomplete; extract it by hand:" \
    "tar -xzf $BACKUP -C $INSTALL_DIR"
  exit 1
fi
pass "restored $BACKUP"
if [ -f "$INSTALL_DIR/DEPLOYED_VERSION" ]; then
  info "now: $(tr '\n' ' ' <"$INSTALL_DIR/DEPLOYED_VERSION")"
fi
if ! sidecar start "$INSTALL_DIR"; then
  fail "the restored sidecar did not start"
  exit 1
fi
if DEPLOY_INSTALL_DIR="$INSTALL_DIR" "$MCP_SCRIPTS_DIR/validate_health.sh" --post-deploy; then
  info "rollback completed; the bot was not touched (restart polymarket-bot to load a restored core/)"
  exit 0
fi
fail "rollback restored the files but the sidecar is not healthy"
exit 1
