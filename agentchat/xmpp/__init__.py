"""xmpp."""
