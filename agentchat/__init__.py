"""agentchat: talk to coding agents from any XMPP client, through your own Prosody."""

__version__ = "0.1.0"
