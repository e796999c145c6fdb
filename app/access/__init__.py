"""Who may call the worker's pages: bearer tokens with scopes and districts (``tokens``).

Keys: ``token:{sha256 of the token}`` (its record) and ``tokens`` (name → hash)."""
