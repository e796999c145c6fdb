"""The staff and operator console (``lifecycle console``): its JSON API under ``/api/``.

Every call but login needs a session (``auth``); every call that changes something also needs the
session's CSRF token in ``X-CSRF-Token``; each is allowed by role and district in the API itself
(``api``), whatever a page shows. Every login, change and refusal of a change is written to the
audit log on Kafka before the call answers. Imports ``app`` and ``wiring`` only.
"""
