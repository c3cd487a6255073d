"""Quota enforcement: the pure decision, its settings, and the use case that carries it out.

`settings` reads the app's enforcement settings as the app reads them; `rules`
decides, from what the database holds, which resellers and configs change
state; `remote` carries each config's change to its panel, once, through an
outbox kept in the config's own `meta`; `run` ties them together after a sync.
"""
