"""Agent backends: the processes that do the work (Claude Code, any command-line agent)."""
