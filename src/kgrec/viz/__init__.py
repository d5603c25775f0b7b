"""Plots: learning curves and result charts."""
