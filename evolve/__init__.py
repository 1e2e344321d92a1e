"""Cartesian GP over gate netlists, on DEAP, with a compiled bit-parallel evaluator."""
