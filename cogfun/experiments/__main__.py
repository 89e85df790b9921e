"""``python -m cogfun.experiments list | run NAME ...`` (the same as ``cogfun experiment ...``)."""

import sys

from .command import main

sys.exit(main())
