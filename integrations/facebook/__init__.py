"""Meta (Facebook and Instagram) custom audiences: the ``facebook`` provider of the ads channel.

- :mod:`integrations.facebook.keys` — customer match keys normalised and hashed by Meta's rules
  (shared with the ads file outbox; no SDK needed).
- :mod:`integrations.facebook.provider` — :class:`FacebookAudiences`, which adds and removes
  customers through the ``facebook-business`` SDK, 10,000 a request.
- :mod:`integrations.facebook.registry` — the ``facebook`` entry point and its settings.

This package imports nothing from the SDK itself, so the file outbox can use its keys alone.
"""
