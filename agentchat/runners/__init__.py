"""Runners: agents on other machines, joined to the hub through the same Prosody."""
