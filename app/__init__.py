"""Lifecycle Notify — the domain: settings, events, profiles, rules, rendering and delivery.

Nothing here imports ``agents`` or ``topics``; the Faust wiring lives in ``lifecycle``.
"""
