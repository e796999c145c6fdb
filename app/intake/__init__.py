"""What comes in: the event catalogue and its JSON Schemas (``events``, ``schemas/events/``),
CAP 1.2 weather alerts turned into events (``cap``), files of events (``files``). Owns no Redis
keys: an event is validated here and travels on ``life-events``."""
