"""Where workloads run: the backend protocol, its registry, and the backends."""
