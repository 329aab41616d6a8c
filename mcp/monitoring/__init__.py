"""The sidecar's monitoring: pure health rules with hysteresis, checks on their own intervals, the metrics.

levels      Level, level_for, Thresholds, Hysteresis (pure)
thresholds  every threshold, from Settings plus a few named constants
checks      the component checks (bot_checks, process_checks) and build_checks()
scheduler   runs each check when due, caches results, contains failures
metrics     the metric table (METRICS) and MonitoringMetrics (a private registry)
http        metrics_app() and start_site() (aiohttp, same event loop)
service     MonitoringService: health_report(), history(), metrics updates
"""
