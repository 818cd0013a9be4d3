"""Utilities: kiln.utils.tensorboard, kiln.utils.checkpoint."""
