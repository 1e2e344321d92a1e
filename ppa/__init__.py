"""Power, performance and area: Yosys for synthesis and mapping, OpenSTA for timing and power."""
