"""Load tests and benchmarks against a running service (loadtests/README.md: what is where, the commands).

Locust is imported only by `locust/locustfile.py` and `locust/shapes.py`, which Locust loads itself (importing
Locust monkey-patches the whole process with gevent); the runner and the pure helpers never import it.
"""
