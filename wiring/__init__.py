"""Between the domain (``app``) and the streams: the Faust app object and its configuration
(``faust_app``), the patches of Faust internals (``faust_patches``), the services a process
builds (``runtime``) and plain Kafka clients (``kafka``). Imports ``app`` only; ``topics`` and
``agents`` are declared against it."""
