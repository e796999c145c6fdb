"""People and enterprises: the model (``model``), validation and normalisation (``validate``,
``phones``), the store and its indexes (``store``), bulk import (``importer``).

Keys: ``p:{id}`` (the profile, JSON), ``ix:{field:value}`` (index sets), ``geo`` (locations)."""
