"""Render the systemd units for another install directory or user than the shipped /opt/polymarket-copy-bot
and `polymarket`.

    python scripts/systemd/render_units.py --install-dir /srv/polymarket-copy-bot --user trader \
        --output /etc/systemd/system

The units are written with the install directory in ExecStart=, WorkingDirectory=, ReadWritePaths=,
STATE_DIR/LOG_DIR and Documentation=; an install directory under /home, /root or /run/user gets
ProtectHome=read-only instead of ProtectHome=yes (which would hide it from the service).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

SHIPPED_INSTALL_DIR = "/opt/polymarket-copy-bot"
SHIPPED_USER = "polymarket"
UNIT_NAMES = ("polymarket-mcp.service", "polymarket-bot.service")
UNIT_DIR = Path(__file__).resolve().parent
HOME_ROOTS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
# systemd splits ExecStart= on whitespace and expands % specifiers and quotes; a path with any of these
# would silently mean something else
_UNSAFE_PATH = re.compile(r"[\s%\"'\\$;]")
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class RenderError(ValueError):
    """The install directory or user cannot be written into a unit file as given."""


def check_install_dir(install_dir: str) -> PurePosixPath:
    """The install directory as an absolute path; RenderError when systemd would misread it."""
    path = PurePosixPath(install_dir)
    if not path.is_absolute():
        raise RenderError(f"--install-dir must be an absolute path, received {install_dir!r}")
    if _UNSAFE_PATH.search(install_dir):
        raise RenderError(
            f"--install-dir must not contain whitespace, %, quotes, backslashes, $ or ; "
            f"(systemd would split or expand them), received {install_dir!r}"
        )
    # a trailing slash would give paths like /srv/bot//.venv; normalise once here
    return PurePosixPath(str(path).rstrip("/") or "/")


def check_user(user: str) -> str:
    """The user (or group) name; RenderError unless it is a plain POSIX account name."""
    if not _USER_NAME.match(user):
        raise RenderError(f"expected a user/group name like 'polymarket' ([a-z_][a-z0-9_-]*), received {user!r}")
    return user


def under_home(path: PurePosixPath) -> bool:
    """Whether `path` lies under a home directory (where ProtectHome=yes would hide it)."""
    return any(path == root or root in path.parents for root in HOME_ROOTS)


def render_unit(text: str, install_dir: str, user: str, group: str | None = None) -> str:
    """The unit `text` with the install directory, user and group replaced."""
    directory = check_install_dir(install_dir)
    user = check_user(user)
    group = check_user(group if group is not None else user)
    rendered = text.replace(SHIPPED_INSTALL_DIR, str(directory))
    rendered = re.sub(r"(?m)^User=.*$", f"User={user}", rendered)
    rendered = re.sub(r"(?m)^Group=.*$", f"Group={group}", rendered)
    if under_home(directory):
        rendered = re.sub(r"(?m)^ProtectHome=yes$", "ProtectHome=read-only", rendered)
    return rendered


def render_all(
    install_dir: str,
    user: str,
    output: Path,
    group: str | None = None,
    units: Sequence[str] = UNIT_NAMES,
    source: Path = UNIT_DIR,
) -> list[Path]:
    """Render `units` from `source` into `output` (created if needed); the written paths."""
    unknown = [name for name in units if name not in UNIT_NAMES]
    if unknown:
        raise RenderError(f"unknown unit(s) {unknown}; expected any of {list(UNIT_NAMES)}")
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name in units:
        target = output / name
        target.write_text(render_unit((source / name).read_text(encoding="utf-8"), install_dir, user, group))
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: render the units; exit 2 with the reason when the arguments cannot be used."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install-dir", default=SHIPPED_INSTALL_DIR, help="absolute install directory")
    parser.add_argument("--user", default=SHIPPED_USER, help="user both services run as")
    parser.add_argument("--group", default=None, help="group (default: same as --user)")
    parser.add_argument("--output", type=Path, required=True, help="folder to write the unit files into")
    parser.add_argument("--unit", action="append", choices=UNIT_NAMES, help="only this unit (repeatable)")
    args = parser.parse_args(argv)
    try:
        written = render_all(args.install_dir, args.user, args.output, args.group, args.unit or UNIT_NAMES)
    except RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
