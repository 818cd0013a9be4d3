"""Utilities: kiln.utils.tensorboard."""
