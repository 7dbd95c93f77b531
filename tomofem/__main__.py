"""``python -m tomofem``: the command-line interface."""

from tomofem.cli import main

raise SystemExit(main())
