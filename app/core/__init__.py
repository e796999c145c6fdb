"""What every stage uses and that owns no data: errors, settings, timestamps, identifiers,
masking, decoding (``codec``), quiet hours, geometry, YAML 1.2. Imports nothing of ours outside
``app.core``; owns no Redis keys."""
