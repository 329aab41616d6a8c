"""The operator's trading view: what the bot holds, earned and did, read from the risk snapshot and the ledger.

view    pure functions: snapshot + ledger figures + `now` -> the JSON the page, Telegram and MCP all show
source  the I/O edge: reads the snapshot and the ledger (read-only, in a worker thread)
text    the phone-sized Telegram texts of /pnl, /positions, /trades and /daily
"""
