"""Test support: a fake Claude Code CLI, mocks of the services the real CLI talks to, fixture recording."""
