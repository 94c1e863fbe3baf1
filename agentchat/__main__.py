import sys

from agentchat.cli import main

sys.exit(main())
