"""The chat logic: the manager bot and the agent bots, side by side above the chat port."""
