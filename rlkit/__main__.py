"""``python -m rlkit``: the command line (``rlkit.cli``)."""
from rlkit.cli import main

raise SystemExit(main())
