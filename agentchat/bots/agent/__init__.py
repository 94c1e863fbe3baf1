"""An agent's chat: its owner's messages in, the agent's events out, its permission prompts."""
