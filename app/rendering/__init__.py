"""Templates to text: the renderer (``renderer``, in a bounded sandbox: ``bounded``), SMS
length and segments (``sms``), the rendered content and its wire form (``content``). Owns no
Redis keys."""
