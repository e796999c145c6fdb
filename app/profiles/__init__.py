"""People and enterprises: the model (``model``), validation and normalisation (``validate``,
``phones``), the store and its indexes (``store``), bulk import (``importer``).

Keys: ``p:{id}`` (the profile, compact JSON: ``codec``), ``{ix}:{field:value}`` (index
bitmaps over the profiles' numbers), ``pn:{n}`` (number → id), ``geo`` (locations)."""
