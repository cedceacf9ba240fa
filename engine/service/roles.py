"""The roles of a key of the HTTP service, apart from the key store (:mod:`engine.service.keys`)
so that ``followup keys`` and ``followup --help`` name them without loading the database layer."""

WRITE = "write"
DASHBOARD = "dashboard"
ROLES = (WRITE, DASHBOARD)
