"""Settings and operator-facing configuration (Prometheus rules, Grafana dashboard)."""
