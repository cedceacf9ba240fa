"""The call lists' branch of the schema's migrations (Alembic ``branch_labels = ("calls",)``),
named under the ``followup.migrations`` entry points: each script here is a revision of this
branch, named ``calls<NNNN>_<what>.py`` (engine/storage/schema_head.py reads the heads from the
names)."""
