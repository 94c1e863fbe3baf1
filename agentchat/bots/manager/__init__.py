"""The manager bot: commands and the guided `new` dialogue."""
