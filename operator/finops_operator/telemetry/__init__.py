"""Reading the outside world: Prometheus queries and alert delivery. Synchronous on purpose: callers
run in Kopf's handler threads, never on the event loop."""
