"""The lessons: what the notebooks need beyond the library — their computations, panels, toy
models and exercise checks, one package per notebook (``nb05_trust_region`` for
``notebooks/05_trust_region.ipynb``), with the helpers they share (:mod:`rlkit.lessons.checks`,
:mod:`rlkit.lessons.panels`).

Nothing outside ``rlkit/lessons/`` imports this package (``tests/test_layers.py`` holds the rule):
the library a researcher imports never depends on the teaching material.
"""
