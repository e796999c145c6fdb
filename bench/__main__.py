"""`make bench`: run every benchmark in turn."""

from bench import crash_recovery

crash_recovery.main()
