"""Persistence: engine and units of work, ORM models, message encryption, migrations."""
