"""The one exception hierarchy of agentchat: catch these at task boundaries, tell the user one line."""

from __future__ import annotations


class AgentChatError(Exception):
    """Base of every error agentchat raises on purpose."""


class ConfigError(AgentChatError):
    """The configuration is missing a value or holds a bad one; the message names the field."""


class ProsodyError(AgentChatError):
    """The embedded or test Prosody could not be configured, started or stopped."""


class ProvisioningError(AgentChatError):
    """An XMPP account could not be created, changed or deleted."""


class BackendError(AgentChatError):
    """An agent backend (Claude Code, command) could not be started or driven."""


class PermissionPromptError(AgentChatError):
    """A permission prompt could not be asked or answered."""


class RepositoryError(AgentChatError):
    """A repository choice is invalid or escapes the configured base path."""


class StateError(AgentChatError):
    """Persisted state could not be read or written."""


class FileRefused(AgentChatError):
    """A file was not taken or not sent (too big, not from our server, a bad name, content unlike its name);
    the message is the one line the chat shows."""
