"""Reliability runs against a running service (or, for multinode, a Ray cluster of their own): hostile input,
overload, killed replicas, a lost node, a long soak. Each is `python -m loadtests.reliability.<name>`."""
