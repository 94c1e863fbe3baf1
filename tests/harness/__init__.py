"""Test harness: a real Prosody on loopback and XMPP user clients (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from tests.harness.clients import ChatState, LoginFailed, ReceivedMessage, Security, UserClient
from tests.harness.prosody import ProsodyServer, free_ports

__all__ = ["ChatState", "LoginFailed", "ProsodyServer", "ReceivedMessage", "Security", "UserClient", "free_ports"]
