"""Notebook 01 (Natural gradient): its computations, panels and exercise checks."""
