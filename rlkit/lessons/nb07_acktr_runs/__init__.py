"""Notebook 07 (ACKTR runs): its computations, panels and exercise checks."""
