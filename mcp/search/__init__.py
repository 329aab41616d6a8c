"""The codebase search engine behind mcp/codebase_search.py: walk, match, classify, cache, rules."""

from mcp.search.cache import FileResult, ScanCache
from mcp.search.classify import Kind, Usage, classify_source
from mcp.search.report import ScanReport
from mcp.search.rules import Rule, Violation
from mcp.search.scanner import ScanOptions, scan_tree
from mcp.search.walker import SkipReason

__all__ = [
    "FileResult",
    "Kind",
    "Rule",
    "ScanCache",
    "ScanOptions",
    "ScanReport",
    "SkipReason",
    "Usage",
    "Violation",
    "classify_source",
    "scan_tree",
]
