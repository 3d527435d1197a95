"""`python -m loadtests.benchmark`: the side-by-side benchmark (benchmark.py; its --help lists the options)."""

import sys

from loadtests.benchmark.benchmark import main

sys.exit(main())
