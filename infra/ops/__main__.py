"""`python -m infra.ops` runs the operator CLI (also installed as `donations-ops`)."""

import sys

from infra.ops.cli import main

sys.exit(main())
