"""`python -m eval_pipelines.cli`: evalctl without its entry-point script."""

import sys

from eval_pipelines.cli import main

sys.exit(main())
