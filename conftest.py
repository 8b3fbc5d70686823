"""Repository-wide pytest configuration.

nbval compares the outputs of cells marked ``# NBVAL_CHECK_OUTPUT``; stderr (warnings,
progress bars) varies between machines and carries no lesson, so it is never compared.
"""


def pytest_collectstart(collector):
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)
