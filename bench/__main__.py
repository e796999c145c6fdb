"""`make bench`: run every benchmark in turn, at the sizes their issues ask for, then size a
city-wide warning from the fan-out's costs (``bench.scale``) and print issue 14's targets beside
the figures (``bench.targets``, also in bench/results/targets.json)."""

import sys

from bench import crash_recovery, fanout, pipeline, scale, targets

for module in (pipeline, crash_recovery, fanout, scale):
    sys.argv = [module.__name__]
    module.main()
targets.main()
