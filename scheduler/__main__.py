"""``python -m scheduler`` is the ``scheduler`` command."""

from .cli import main

raise SystemExit(main())
