"""The composition root: the Faust app, the ``lifecycle`` command and the local dev stack."""
