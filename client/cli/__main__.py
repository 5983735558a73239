"""`python -m agentgym.client.cli` is the `agentgym` command."""

import sys

from agentgym.client.cli import main

sys.exit(main())
