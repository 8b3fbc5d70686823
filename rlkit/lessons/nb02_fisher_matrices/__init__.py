"""Notebook 02 (Fisher matrices): its computations, panels and exercise checks."""
