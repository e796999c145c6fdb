"""`make bench`: run every benchmark in turn, at the sizes their issues ask for."""

import sys

from bench import crash_recovery, fanout, pipeline

for module in (pipeline, crash_recovery, fanout):
    sys.argv = [module.__name__]
    module.main()
