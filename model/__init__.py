"""Float PyTorch reference models (seed 000: ASE-GRU)."""
