"""FinOps and data-sovereignty guardrails for GPU/AI workloads on Kubernetes."""

__version__ = "0.1.0"
