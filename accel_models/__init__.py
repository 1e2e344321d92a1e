"""Analytical accelerator models: layers as GEMMs, systolic and multi-pod arrays (rtl and SCALE-Sim cycle
models), DRAM/SRAM traffic, energy with measured PPA, multiplier assignments and block sparsity."""
