"""Entrypoints: the composition root, the command line and the worker processes."""
