"""Files between a person and an agent, both ways, through the server's XEP-0363 upload service.

In: an upload the owner sends (body + XEP-0066 URL) is fetched from our own server only
(fetcher.py), checked (checks.py: where it comes from, its name, its size, its content against its
name), saved in the agent's repository under a git-ignored folder (saved_files.py) and handed to
the agent (intake.py): images as image blocks, other files as a line with the saved path. Out: the
agent's ``send_file`` tool and answers too long for a chat message go up as files (outgoing.py).
"""
