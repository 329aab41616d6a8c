"""Alertmanager-style fingerprints: an alert's identity is its label set, hashed with 64-bit FNV-1a.

Like Alertmanager, the hash runs over the label names and values in sorted order with a 0xff byte
between fields, so the same labels always give the same fingerprint, whatever order they came in.
The text of an alert is part of its identity through a digest label: two alerts with the same key but
different text are different alerts (the key's cooldown, not the duplicate window, holds the second).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from utils.alerting.model import Alert

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = 0xFF


def fnv1a_64(data: bytes, start: int = _FNV_OFFSET) -> int:
    """64-bit FNV-1a of `data`, continuing from `start` (the offset basis by default)."""
    value = start
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & _MASK
    return value


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint of a label set, 16 hex digits; independent of the labels' order."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        value = fnv1a_64(name.encode(), value)
        value = fnv1a_64(bytes([_SEPARATOR]), value)
        value = fnv1a_64(str(labels[name]).encode(), value)
        value = fnv1a_64(bytes([_SEPARATOR]), value)
    return f"{value:016x}"


def text_digest(text: str) -> str:
    """A short, stable digest of an alert's text (whitespace at the ends does not count)."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def identity_labels(alert: Alert) -> dict[str, str]:
    """The labels that make an alert itself: its name, scope, key, own labels and a digest of its text.

    Severity is left out on purpose: the same problem getting worse is an escalation of one alert,
    which the dedup decision handles, not a different alert.
    """
    labels = {str(name): str(value) for name, value in alert.labels.items()}
    labels["alertname"] = alert.alertname
    labels["scope"] = "staging" if alert.staging else "main"
    labels["text"] = text_digest(alert.text)
    if alert.key is not None:
        labels["key"] = alert.key
    return labels


def alert_fingerprint(alert: Alert) -> str:
    """The fingerprint the duplicate window is applied to."""
    return label_fingerprint(identity_labels(alert))
