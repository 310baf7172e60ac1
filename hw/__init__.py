"""Amaranth 0.5 generators: depth-wise conv accelerator, SE-gated GRU datapath, cell top (docs/numerics.md)."""
