"""Builders for the alert pipeline tests: a fake Bot API on loopback and pipelines pointed at it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_telegram import FakeTelegram
from utils.alerting.delivery import RetryPolicy
from utils.alerting.model import Alert, AlertSeverity
from utils.alerting.pipeline import AlertPipeline, PipelineConfig

TOKEN = "987654321:CANARY-bot-token-AAb3c4d5e6f7g8h9"
CHAT = "4242"
STAGING_CHAT = "-100777"
# retries in milliseconds so the failure tests stay short; the real defaults are seconds
FAST_RETRY = RetryPolicy(base_seconds=0.01, factor=2.0, cap_seconds=0.05, jitter=0.5, error_pause_seconds=0.05)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


def pipeline_config(outbox: Path | str, fake: FakeTelegram | None = None, **overrides: Any) -> PipelineConfig:
    values: dict[str, Any] = {
        "outbox_path": outbox,
        "telegram_token": TOKEN if fake is not None else None,
        "telegram_base_url": fake.base_url if fake is not None else "http://127.0.0.1:9/bot",
        "chat_id": CHAT if fake is not None else None,
        "retry": FAST_RETRY,
        "telegram_connect_timeout": 0.5,
        "telegram_read_timeout": 0.3,
        "poll_interval_seconds": 0.1,
    }
    values.update(overrides)
    return PipelineConfig(**values)


@pytest.fixture
async def make_pipeline(tmp_path: Path) -> AsyncIterator[Callable[..., AlertPipeline]]:
    built: list[AlertPipeline] = []

    def build(fake: FakeTelegram | None = None, *, outbox: Path | None = None, **overrides: Any) -> AlertPipeline:
        config = pipeline_config(outbox or tmp_path / "alerts_outbox.sqlite3", fake, **overrides)
        pipeline = AlertPipeline(config, rng=random.Random(7))
        built.append(pipeline)
        return pipeline

    yield build
    for pipeline in built:
        await pipeline.aclose(grace_seconds=1.0)


def alert(text: str, severity: AlertSeverity = AlertSeverity.WARNING, **kw: Any) -> Alert:
    return Alert(text, severity, **kw)
