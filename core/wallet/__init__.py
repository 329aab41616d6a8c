"""Wallet monitor: where the followed wallets' trades come from (replay file or Polymarket Data API)."""
