"""Notebook 05 (The trust region): its computations, panels and exercise checks."""
