"""`python -m donations_ops` runs the operator CLI (also installed as `donations-ops`)."""

import sys

from donations_ops.cli import main

sys.exit(main())
