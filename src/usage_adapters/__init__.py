"""Adapters: the core's ports implemented with SQLAlchemy, httpx, Redis and RQ."""
