"""Sweeps: one config trained over a grid of field values, then compared."""
