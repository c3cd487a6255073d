"""The pure domain of usage-sync: rules, value objects, ports and use cases.

Nothing in this package reads the clock, the environment, the network or a
database; every such input arrives as an argument or through a port.
"""
