"""cocotb verification benches and their runner (Icarus and Verilator through cocotb_tools.runner)."""
