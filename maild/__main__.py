"""``python -m maild``: the same as the ``maild`` command."""

import sys

from maild.cli import main

sys.exit(main())
