"""``python -m oncofhir``."""

import sys

from .cli import main

sys.exit(main())
