"""The local stack for ``lifecycle dev`` and the tests: the embedded broker, a Redis, the SMTP
sink and process helpers (``stack``), the demo data (``demo``) and ``lifecycle dev`` itself
(``dev``). Never part of a production worker."""
