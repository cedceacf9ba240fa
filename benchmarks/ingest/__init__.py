"""The ingest benchmark: followup against the floor of parse + bulk insert, per backend."""
