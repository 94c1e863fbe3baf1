"""Rooms: people and several agents in one group chat (XEP-0045), on the manager's account."""
