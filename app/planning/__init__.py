"""From an event to planned notifications: rules (``model``, ``rules``, ``expressions``,
``samples``), who a rule reaches (``recipients``), the one planning loop (``planner``), the
blast-radius guard (``blast``), who was warned (``warned``) and the chunks of large audiences
(``fanout``).

Keys: ``runs:{rule}``, ``approved:{rule}:{version}``, ``held``, ``held:{id}`` (the guard);
``warned:{root}``, ``wroot:{id}`` (warned). The plans themselves are recorded in ``app.state``."""
