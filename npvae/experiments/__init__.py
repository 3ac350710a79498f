"""Experiments: many runs at once (sweeps over settings), trained, evaluated and drawn."""
