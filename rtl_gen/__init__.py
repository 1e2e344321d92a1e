"""RTL generators (Amaranth components) and their Verilog output."""
