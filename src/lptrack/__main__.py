"""``python -m lptrack``: the same as the ``lptrack`` command."""

import sys

from .cli import main

sys.exit(main())
