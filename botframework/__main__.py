"""``python -m botframework`` is the ``botframework`` command."""

import sys

from botframework.cli import main

sys.exit(main())
