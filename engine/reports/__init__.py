"""Reports: what campaigns achieved and which touch earned each order (../shared/design/REPORTS.md)."""
