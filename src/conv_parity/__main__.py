"""``python -m conv_parity``: the ``conv-parity`` console script (the same as
``python -m conv_parity.cli``)."""

import sys

from conv_parity.cli import main

sys.exit(main())
