"""Verification: goldenbrick tables, simulation of shipped Verilog, formal equivalence."""
