"""``python -m fastgrad`` == the ``fastgrad`` console script."""

import sys

from .cli import main

sys.exit(main())
