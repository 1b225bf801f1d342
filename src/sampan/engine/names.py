"""Random container names in Docker's style (``adjective_scientist``)."""

from __future__ import annotations

import secrets

_LEFT = ("admiring", "brave", "busy", "clever", "cool", "dreamy", "eager", "elastic",
         "epic", "festive", "focused", "gallant", "happy", "hopeful", "jolly", "keen",
         "kind", "lucid", "magical", "modest", "nifty", "optimistic", "peaceful", "quirky",
         "relaxed", "serene", "sharp", "stoic", "tender", "trusting", "vibrant", "zealous")
_RIGHT = ("archimedes", "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein",
          "euclid", "fermat", "feynman", "galileo", "gauss", "hopper", "hypatia", "kepler",
          "knuth", "lamport", "lovelace", "mccarthy", "meitner", "newton", "noether",
          "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak")


def random_name(taken: set[str]) -> str:
    for attempt in range(100):
        name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if attempt:
            name += str(secrets.randbelow(10))
        if name not in taken:
            return name
    return "sampan_" + secrets.token_hex(6)
