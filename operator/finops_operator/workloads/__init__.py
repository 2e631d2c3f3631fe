"""Facts about Kubernetes workloads that every kind reads the same way: what a pod asks for, who owns
it, where each kind keeps its pod template, and the annotations the operator leaves on workloads.
Pure and tolerant of malformed input: one parser per fact."""
