"""Cartesian GP over gate netlists, on DEAP, with a compiled bit-parallel evaluator."""

COSTS = ("area", "transistors", "power")
"""What the search minimises (``--cost``): cell area, transistor counts, or switching energy (:mod:`evolve.app`)."""
