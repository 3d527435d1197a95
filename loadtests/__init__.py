"""Load tests and benchmarks against a running service.

Locust is imported only by `locustfile.py` and `shapes.py`, which Locust loads itself (importing Locust
monkey-patches the whole process with gevent); the runner and the pure helpers never import it.
"""
