"""One scan of a tree: walk, reuse cached results for unchanged files, analyse the rest, apply the rules.

Synchronous on purpose: it runs in a worker thread (the server) or in the CLI. A file is analysed in
three steps, each much cheaper than the next: a byte search for the parameter names (most files stop
here), a lexical check whether a hit is in code rather than in comments or prose strings, and only then
an `ast` parse and classification. Nothing found under the root stops the scan: unreadable, binary,
huge or unparseable files are reported in the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mcp.search.cache import FileResult, ScanCache
from mcp.search.classify import Kind, Usage, classify_source
from mcp.search.lexer import hit_lines, lines_are_simple, needs_parse, region_source
from mcp.search.matcher import NameMatcher
from mcp.search.report import ScanReport
from mcp.search.rules import (
    DEFAULT_ALLOWED_WRITE_MODULES,
    DEFAULT_EXEMPT_MODULES,
    DEFAULT_LITERAL_MODULES,
    ModuleSet,
    Violation,
    env_drift,
    settings_fields,
    usage_violations,
)
from mcp.search.walker import PROBLEM_REASONS, Skipped, SkipReason, read_regular_file, walk_tree

SCANNER_VERSION = 1
DEFAULT_MAX_FILE_BYTES = 1_000_000
PYTHON_SUFFIXES = (".py", ".pyi")
TEXT_SUFFIXES = (".yaml", ".yml", ".toml", ".sh", ".bash", ".cfg", ".ini", ".conf", ".service", ".env")
# a file modified this recently may change again within the same mtime tick: analyse it, don't cache it
RACY_WINDOW_NS = 2_000_000_000
# below this size a whole-file parse is cheap enough; above it only the statements holding a hit are parsed
REGION_PARSE_MIN_BYTES = 32_768
_PROGRESS_EVERY = 256

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ScanOptions:
    """Everything besides the parameter names that decides what a scan reports."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    respect_gitignore: bool = True
    extra_ignores: tuple[str, ...] = ()
    allowed_write_modules: tuple[str, ...] = DEFAULT_ALLOWED_WRITE_MODULES
    literal_modules: tuple[str, ...] = DEFAULT_LITERAL_MODULES
    exempt_modules: tuple[str, ...] = DEFAULT_EXEMPT_MODULES
    settings_file: str = "config/settings.py"
    settings_class: str = "Settings"
    env_example: str = ".env.example"
    text_suffixes: tuple[str, ...] = TEXT_SUFFIXES

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0:
            raise ValueError(f"expected max_file_bytes > 0, received {self.max_file_bytes}")


def file_kind(name: str, text_suffixes: Sequence[str] = TEXT_SUFFIXES) -> str | None:
    """'python', 'text' (config-like files searched as text) or None (not scanned for parameters)."""
    if name.endswith(PYTHON_SUFFIXES):
        return "python"
    if name.startswith(".env") or name.endswith(tuple(text_suffixes)):
        return "text"
    return None


def fingerprint(root: str, parameters: Sequence[str], options: ScanOptions) -> str:
    """What cached results depend on; a different fingerprint means the cache is of no use."""
    basis = [SCANNER_VERSION, root, sorted(parameters), options.max_file_bytes, list(options.text_suffixes)]
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:32]


def analyze_file(
    path: str, rel: str, kind: str, size: int, mtime_ns: int, matcher: NameMatcher, limit: int
) -> FileResult:
    """Read and classify one file; never raises for what is in the file."""
    try:
        data = read_regular_file(path, limit)
    except OSError as e:
        return FileResult(size, mtime_ns, kind, skip=SkipReason.UNREADABLE, error=e.strerror or str(e))
    if len(data) > limit:
        return FileResult(size, mtime_ns, kind, skip=SkipReason.TOO_LARGE)
    if b"\0" in data:
        return FileResult(size, mtime_ns, kind, skip=SkipReason.BINARY)
    low = data.lower()
    hits = matcher.find(low)
    if not hits:
        return FileResult(size, mtime_ns, kind)
    if kind == "text":
        return FileResult(size, mtime_ns, kind, text_usages(low, hits))
    if not needs_parse(low, hits):
        return FileResult(size, mtime_ns, kind)
    try:
        usages = classify_hits(data, low, hits, frozenset(matcher.names), rel)
    except SyntaxError as e:
        reason = f"does not parse: {e.msg} (line {e.lineno})"
    except ValueError as e:  # bad encoding declaration, NUL bytes
        reason = f"does not parse: {e}"
    except RecursionError:
        reason = "does not parse: nested too deeply for the interpreter's recursion limit"
    else:
        return FileResult(size, mtime_ns, kind, tuple(usages), parsed=True)
    # keep the usages visible as text matches so a syntax error cannot hide a parameter
    return FileResult(size, mtime_ns, kind, text_usages(low, hits), error=reason, parsed=True)


def classify_hits(
    data: bytes, low: bytes, hits: list[tuple[int, str]], parameters: frozenset[str], rel: str
) -> list[Usage]:
    """Classify the hits, parsing only the statements that hold them when the file is big."""
    simple = lines_are_simple(data)
    lines = hit_lines(data, hits) if simple else None
    if len(data) >= REGION_PARSE_MIN_BYTES:
        regions = region_source(data, low, hits)
        if regions is not None:
            try:
                return classify_source(regions, parameters, filename=rel, lines=lines)
            except (SyntaxError, ValueError) as e:
                # a statement boundary guessed wrong: the whole-file parse below gives the real answer
                logger.debug("region parse of %s failed (%s), parsing the whole file", rel, e)
    return classify_source(data, parameters, filename=rel, lines=lines)


def text_usages(low: bytes, hits: list[tuple[int, str]]) -> tuple[Usage, ...]:
    """A TEXT usage per hit, with its line number."""
    usages = []
    line, last = 1, 0
    for offset, name in hits:
        line += low.count(b"\n", last, offset)
        last = offset
        usages.append(Usage(name, line, Kind.TEXT, "text"))
    return tuple(usages)


@dataclass
class _Tally:
    results: dict[str, FileResult] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    analyzed: int = 0
    cached: int = 0
    parsed: int = 0


def scan_tree(
    root: Path,
    parameters: Sequence[str],
    cache: ScanCache | None = None,
    *,
    options: ScanOptions | None = None,
    progress: Progress | None = None,
    now_ns: Callable[[], int] = time.time_ns,
) -> ScanReport:
    """Scan `root` for `parameters`, reusing `cache` for unchanged files, and return the report.

    Raises ValueError for bad parameter names or options and OSError when the root cannot be listed;
    everything wrong with individual files is reported, not raised.
    """
    options = options or ScanOptions()
    started = time.perf_counter()
    scan_start_ns = now_ns()
    matcher = NameMatcher(parameters)
    root_str = os.path.realpath(root)
    if not os.path.isdir(root_str):
        raise NotADirectoryError(f"expected the scan root to be a directory, received {root}")
    cache = cache if cache is not None else ScanCache()
    cache.prepare(fingerprint(root_str, matcher.names, options))
    walk = walk_tree(Path(root_str), respect_gitignore=options.respect_gitignore, extra_ignores=options.extra_ignores)
    targets = [(entry, kind) for entry in walk.files if (kind := file_kind(entry.entry.name, options.text_suffixes))]
    tally = _Tally(skipped=list(walk.skipped))
    for done, (entry, kind) in enumerate(targets, 1):
        _scan_one(entry.rel, entry.entry, kind, matcher, options, cache, tally, scan_start_ns)
        if progress is not None and (done % _PROGRESS_EVERY == 0 or done == len(targets)):
            progress(done, len(targets))
    cache.retain(set(tally.results) | {s.rel for s in tally.skipped})
    try:
        cache.save()
    except OSError as e:
        # the scan itself is fine; the next one just starts cold
        logger.warning("cannot write the codebase search cache %s: %s", cache.path, e)
        cache.status, cache.message = "unsaved", f"cannot write {cache.path}: {e.strerror or e}"
    report = _report(root_str, matcher, options, tally, walk.ignored, cache, started)
    report.walked_files = tuple(entry.rel for entry in walk.files)
    return report


def _scan_one(
    rel: str,
    entry: os.DirEntry[str],
    kind: str,
    matcher: NameMatcher,
    options: ScanOptions,
    cache: ScanCache,
    tally: _Tally,
    scan_start_ns: int,
) -> None:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError as e:
        tally.skipped.append(Skipped(rel, SkipReason.UNREADABLE, e.strerror or str(e)))
        return
    if info.st_size > options.max_file_bytes:
        tally.skipped.append(Skipped(rel, SkipReason.TOO_LARGE, f"{info.st_size} bytes > {options.max_file_bytes}"))
        return
    result = cache.get(rel, info.st_size, info.st_mtime_ns)
    if result is not None:
        tally.cached += 1
    else:
        result = analyze_file(entry.path, rel, kind, info.st_size, info.st_mtime_ns, matcher, options.max_file_bytes)
        tally.analyzed += 1
        tally.parsed += result.parsed
        racy = info.st_mtime_ns >= scan_start_ns - RACY_WINDOW_NS
        if racy or result.skip == SkipReason.UNREADABLE:
            cache.forget(rel)  # analyse again next time: it may change within the same mtime, or become readable
        else:
            cache.put(rel, result)
    if result.skip is not None:
        tally.skipped.append(Skipped(rel, SkipReason(result.skip), result.error or ""))
    else:
        tally.results[rel] = result


def _report(
    root: str, matcher: NameMatcher, options: ScanOptions, tally: _Tally, ignored: int, cache: ScanCache, started: float
) -> ScanReport:
    usages = {rel: result.usages for rel, result in tally.results.items() if result.usages}
    errors = [{"file": rel, "reason": r.error} for rel, r in sorted(tally.results.items()) if r.error]
    errors += [
        {"file": s.rel, "reason": f"{s.reason.value}: {s.detail}"} for s in tally.skipped if s.reason in PROBLEM_REASONS
    ]
    violations = usage_violations(
        usages,
        allowed_write=ModuleSet(options.allowed_write_modules),
        literal_allowed=ModuleSet(options.literal_modules),
        exempt=ModuleSet(options.exempt_modules),
    )
    drift, drift_errors = _env_drift(root, options)
    skipped_counts = Counter(s.reason.value for s in tally.skipped)
    if ignored:
        skipped_counts[SkipReason.GITIGNORED.value] = ignored
    return ScanReport(
        root=root,
        parameters=matcher.names,
        usages=usages,
        violations=violations + drift,
        errors=errors + drift_errors,
        skipped=sorted(tally.skipped, key=lambda s: s.rel),
        files_skipped=dict(sorted(skipped_counts.items())),
        files_scanned=len(tally.results),
        files_analyzed=tally.analyzed,
        files_cached=tally.cached,
        files_parsed=tally.parsed,
        duration_ms=(time.perf_counter() - started) * 1000,
        scanned_at=time.time(),
        cache_status=cache.status,
        cache_message=cache.message,
    )


def _env_drift(root: str, options: ScanOptions) -> tuple[list[Violation], list[dict[str, str]]]:
    """The drift check, only when both .env.example and the settings module exist in the root."""
    env_path = os.path.join(root, options.env_example)
    settings_path = os.path.join(root, options.settings_file)
    if not (os.path.isfile(env_path) and os.path.isfile(settings_path)):
        return [], []
    try:
        env_text = read_regular_file(env_path, options.max_file_bytes).decode("utf-8", errors="replace")
        source = read_regular_file(settings_path, options.max_file_bytes)
        fields, prefix = settings_fields(source, options.settings_class)
    except OSError as e:
        return [], [{"file": options.env_example, "reason": f"drift check skipped: {e.strerror or e}"}]
    except SyntaxError as e:
        reason = f"drift check skipped: the settings module does not parse: {e.msg} (line {e.lineno})"
        return [], [{"file": options.settings_file, "reason": reason}]
    except (ValueError, LookupError) as e:
        return [], [{"file": options.settings_file, "reason": f"drift check skipped: {e}"}]
    return env_drift(options.env_example, env_text, options.settings_file, fields, prefix), []
