"""The read-only dashboard: report pages behind a login with a dashboard key."""
