"""Locust load tests: the users and their corpus, the step shape, and the headless runner with SLOs.

`python -m loadtests.locust` is the runner (run.py). This package never imports Locust itself: only
locustfile.py and shapes.py do, and only Locust loads them.
"""
