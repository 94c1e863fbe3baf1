"""A person's client is not held to Prosody's own 10 kB/s: a 1 MB log pasted in four messages arrives."""

from __future__ import annotations

MESSAGE = 240_000  # below c2s_stanza_size_limit (256 KiB) with the stanza around it


async def test_a_person_pastes_a_1_mb_log_in_four_messages_and_all_of_it_arrives(user_client) -> None:
    alice, bob = await user_client("alice"), await user_client("bob")  # people: not service accounts
    parts = [f"part {index}\n" + chr(ord("a") + index) * MESSAGE for index in range(4)]
    for part in parts:
        await alice.send(bob.bare_jid, part)
    # At Prosody's own 10kb/s this takes about 96 s; at the default 1mb/s about one.
    got = [await bob.expect(f"part {index}", from_=alice.bare_jid, timeout=20) for index in range(4)]
    assert [m.body for m in got] == parts
