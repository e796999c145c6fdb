"""Lifecycle Notify — the domain. Data flows intake → planning → rendering → delivery, with
profiles and state beside it; each stage is a sub-package that owns its data and its Redis keys:

    core/        errors, settings, timestamps, identifiers, masking, codec, quiet hours, geometry
    access/      who may call the worker's pages: bearer tokens, scopes and districts
    intake/      the event catalogue (schemas/), validation, CAP alerts, files of events
    profiles/    the profile model, validation, store and indexes, import, phone numbers
    planning/    rules, expressions, recipients, the planner, the blast guard, warned, fan-out
    rendering/   templates (bounded), SMS length, the rendered content
    delivery/    the deliverer, policy, opt-outs and caps, rate limits, unsubscribe, gateways/
    state/       delivery records and claims, the deferred queue, traces and counters, writes
    notifications.py   the record that crosses from planning to delivery, and its enums

Nothing here imports ``wiring``, ``topics``, ``agents`` or the command line
(``tests/contract/test_layout.py`` checks it, and that no stage imports another in a cycle).
"""
