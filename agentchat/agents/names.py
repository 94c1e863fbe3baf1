"""Friendly agent names such as ``swift-fox``: easy to say, to type on a phone, and valid XMPP localparts.

Every name is lowercase ASCII letters joined by a hyphen, so it needs no escaping in a JID
(RFC 7622 forbids ``" & ' / : < > @`` and spaces in a localpart) and no case folding.
"""

from __future__ import annotations

import random
from collections.abc import Container

from agentchat.errors import AgentChatError

__all__ = ["ADJECTIVES", "ANIMALS", "RESERVED_NAMES", "new_agent_name"]

# Accounts the service itself uses; an agent may never be given one of these.
RESERVED_NAMES = frozenset({"manager", "admin"})

ADJECTIVES = (
    "agile", "amber", "ancient", "azure", "bold", "brave", "breezy", "bright", "brisk", "calm",
    "careful", "cheerful", "clever", "cosmic", "cozy", "crimson", "crisp", "curious", "daring", "dapper",
    "eager", "early", "earnest", "easy", "electric", "fearless", "fierce", "fluffy", "frosty", "gentle",
    "gifted", "glad", "golden", "graceful", "grand", "happy", "hardy", "hasty", "hidden", "honest",
    "humble", "icy", "jolly", "keen", "kind", "lively", "loyal", "lucky", "lunar", "mellow",
    "merry", "mighty", "misty", "modest", "nimble", "noble", "patient", "peaceful", "plucky", "polite",
    "proud", "quick", "quiet", "radiant", "rapid", "ready", "rosy", "rustic", "sandy", "serene",
    "sharp", "shiny", "silent", "silver", "sleek", "smooth", "snowy", "solar", "spry", "steady",
    "stellar", "stormy", "sturdy", "sunny", "swift", "tidy", "tranquil", "trusty", "velvet", "vivid",
    "warm", "wary", "wild", "windy", "wise", "witty", "zany", "zealous", "zen", "zesty",
)  # fmt: skip

ANIMALS = (
    "albatross", "alpaca", "antelope", "badger", "beaver", "bison", "bobcat", "buffalo", "camel", "caribou",
    "cheetah", "chipmunk", "cobra", "condor", "cougar", "coyote", "crane", "crow", "deer", "dingo",
    "dolphin", "dove", "duck", "eagle", "egret", "elk", "falcon", "ferret", "finch", "flamingo",
    "fox", "gazelle", "gecko", "gibbon", "giraffe", "goose", "gopher", "gorilla", "hare", "hawk",
    "hedgehog", "heron", "hippo", "ibex", "iguana", "jackal", "jaguar", "jay", "kestrel", "kiwi",
    "koala", "lemur", "leopard", "lion", "llama", "lobster", "lynx", "magpie", "mallard", "manatee",
    "marmot", "meerkat", "mink", "moose", "narwhal", "newt", "ocelot", "octopus", "orca", "osprey",
    "otter", "owl", "panda", "panther", "parrot", "pelican", "penguin", "puffin", "puma", "quail",
    "rabbit", "raccoon", "raven", "robin", "salmon", "seal", "shark", "sparrow", "squid", "stork",
    "swan", "tapir", "tiger", "toucan", "turtle", "walrus", "weasel", "whale", "wolf", "wombat",
)  # fmt: skip

# Random picks before giving up on plain names: with 10,000 of them, failing this often means
# nearly all are taken, and a numbered name is better than a long search.
_PLAIN_ATTEMPTS = 64
_NUMBERED_ATTEMPTS = 100_000


def new_agent_name(taken: Container[str], rng: random.Random | None = None) -> str:
    """A name not in ``taken`` nor reserved: ``swift-fox``, or ``swift-fox-2`` when plain ones run out.

    ``taken`` is compared as given: pass lowercase names (XMPP localparts are case-insensitive).
    """
    rng = rng or random.Random()
    for _ in range(_PLAIN_ATTEMPTS):
        name = f"{rng.choice(ADJECTIVES)}-{rng.choice(ANIMALS)}"
        if _free(name, taken):
            return name
    stem = f"{rng.choice(ADJECTIVES)}-{rng.choice(ANIMALS)}"
    for number in range(2, _NUMBERED_ATTEMPTS):
        name = f"{stem}-{number}"
        if _free(name, taken):
            return name
    raise AgentChatError("No free agent name left: remove some agents first.")


def _free(name: str, taken: Container[str]) -> bool:
    return name not in RESERVED_NAMES and name not in taken
