"""Stand-ins for the outside world, for trying usage-sync without one: emulated panels
(`usage-sync emulate`) and the demo's sample data (`usage-sync demo`).

Nothing here is part of a sync: the core, the adapters and the composition root never
import this package.
"""
