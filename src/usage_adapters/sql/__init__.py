"""The SQLAlchemy store over the PHP app's own tables."""
