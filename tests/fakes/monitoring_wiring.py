"""Building a MonitoringServer in tests from flat keywords: the MonitoringSources fields go into `sources`.

Tests fake one or two sources at a time (psutil, the clock, the gate); this keeps each call to the point
while the server itself takes the one `MonitoringSources` value (issue 12).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from config.settings import Settings
from mcp.monitoring.wiring import MonitoringSources
from mcp.monitoring_server import MonitoringServer

SOURCE_FIELDS = frozenset(field.name for field in fields(MonitoringSources))


def split_sources(options: dict[str, Any]) -> tuple[MonitoringSources, dict[str, Any]]:
    """(the MonitoringSources made of the source keywords, the other keywords)."""
    sources = MonitoringSources(**{key: value for key, value in options.items() if key in SOURCE_FIELDS})
    return sources, {key: value for key, value in options.items() if key not in SOURCE_FIELDS}


def monitoring_server(settings: Settings, **options: Any) -> MonitoringServer:
    """MonitoringServer(settings, sources=MonitoringSources(<source keywords>), <the other keywords>)."""
    sources, rest = split_sources(options)
    return MonitoringServer(settings, sources=sources, **rest)
