"""Run the `llmfy` command as `python -m llmfy_core.cli`."""

import sys

from llmfy_core.cli import main

sys.exit(main())
