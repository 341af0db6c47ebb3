"""``python -m conv_parity.cli``: the console script without an installed entry point (the
end-to-end tests run the CLI this way, against the checkout they test)."""

import sys

from conv_parity.cli import main

sys.exit(main())
