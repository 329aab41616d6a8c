"""The alert pipeline behind `utils.alerts`: dedup, a durable outbox, and delivery channels.

`utils.alerts` is the public face (the senders every module imports); this package holds the parts:
`fingerprint` and `dedup` (pure decisions), `render` (Telegram HTML), `outbox` (SQLite, written before
any send), `telegram_channel` and `alertmanager_channel` (one delivery attempt each), `delivery` (the
worker that drains the outbox in order, with retries), `pipeline` (the parts put together),
`redaction` (keeps the bot token out of every log line) and `commands` (the operator's Telegram
commands).
"""
