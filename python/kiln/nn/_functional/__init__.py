"""Pieces of kiln.nn.functional, split by family (activations, losses, spatial ops)."""
