"""CLOB clients behind one protocol: the paper client (default) and the Polymarket CLOB V2 adapter."""
