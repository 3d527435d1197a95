"""`python -m loadtests.locust`: the headless Locust run with SLOs (run.py; its --help lists the options)."""

import sys

from loadtests.locust.run import main

sys.exit(main())
