"""followup's HTTP service: Segment-shaped ingest with write keys, unsubscribe links, inbound
webhooks, and health, readiness and metrics endpoints (``followup serve``; docs/service.md).

``engine.service.app.create_app`` builds the ASGI app; ``engine.service.server`` runs it. Nothing
is imported here, so commands that only need the key store do not load the web stack.
"""
