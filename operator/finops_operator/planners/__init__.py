"""Pure decision functions ``(spec, observed, now) -> plan``. No Kopf, no Kubernetes client, no clock:
``now`` is always an argument, so tests pin it."""
