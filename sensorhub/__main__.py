"""``python -m sensorhub`` runs the CLI."""

import sys

from sensorhub.cli import main

sys.exit(main())
