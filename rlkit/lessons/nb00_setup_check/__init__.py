"""Notebook 00 (Is this machine ready for the kit?): its computations, panels and exercise checks."""
