"""The invariants a chaos run adds to the market report's three, each computed from what Kafka carried.

- `no_deal_funded_twice`: at most one distinct `EscrowFunded` event per deal
  (a relay republishing the same event id is a duplicate, not a second funding).
- `every_negotiation_ended`: every `ThreadOpened` has a `NegotiationEnded`.
- `every_deal_settled_or_refunded`: every `DealAgreed` has a `FundsReleased`,
  `Refunded` or `EscrowFailed`.
- `no_event_lost`: every command seen on a command topic is the cause
  (`causation_id`) of at least one event on that service's events topic. The
  services answer every command that way: an effect or a typed refusal
  (`ListingCommandRefused`, `ActionRefused`, `SettlementCommandRefused`);
  settlement answers `FundWallet` with `WalletFunded`.
- `no_relay_storm`: no event id is on its topic more than `STORM_COPIES` times. A relay
  killed after publishing a batch and before marking it sent publishes it again once
  it is back, and consumers drop the copy by its event id; a relay that publishes the
  same rows in a loop (the seed 2 bug of wave 4) floods the topic, which the checks
  that count by event id cannot see.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from haggle.contracts import Envelope

Seen = list[tuple[str, Envelope]]

ANSWERED_ON = {
    "listing.commands": "listing.events",
    "negotiation.commands": "negotiation.events",
    "settlement.commands": "settlement.events",
}
COMMAND_TOPICS = tuple(ANSWERED_ON)
SETTLED = ("FundsReleased", "Refunded", "EscrowFailed")
STORM_COPIES = 3
"""The most times one event may be on its topic: the first publish and a republish after each of
two kills of its service that each fell between publishing and marking it sent."""


def _of(seen: Iterable[tuple[str, Envelope]], *types: str) -> list[Envelope]:
    return [env for _, env in seen if env.type in types]


def no_deal_funded_twice(seen: Seen) -> list[str]:
    fundings: dict[str, set[str]] = defaultdict(set)
    for env in _of(seen, "EscrowFunded"):
        fundings[env.payload["deal_id"]].add(str(env.event_id))
    return [f"deal {deal} funded {len(ids)} times" for deal, ids in sorted(fundings.items()) if len(ids) > 1]


def every_negotiation_ended(seen: Seen) -> list[str]:
    opened = {env.payload["thread_id"] for env in _of(seen, "ThreadOpened")}
    ended = {env.payload["thread_id"] for env in _of(seen, "NegotiationEnded")}
    return [f"negotiation {thread} never ended" for thread in sorted(opened - ended)]


def every_deal_settled(seen: Seen) -> list[str]:
    agreed = {env.payload["deal_id"] for env in _of(seen, "DealAgreed")}
    settled = {env.payload["deal_id"] for env in _of(seen, *SETTLED)}
    return [f"deal {deal} neither settled nor refunded" for deal in sorted(agreed - settled)]


def unanswered_commands(seen: Seen) -> dict[str, list[Envelope]]:
    """Per command topic, the commands no event on its answer topic names as its cause."""
    causes: dict[str, set[str]] = defaultdict(set)
    for topic, env in seen:
        if env.causation_id:
            causes[topic].add(env.causation_id)
    missing: dict[str, list[Envelope]] = {}
    for topic, env in seen:
        if topic in ANSWERED_ON and str(env.event_id) not in causes[ANSWERED_ON[topic]]:
            missing.setdefault(topic, []).append(env)
    return missing


def commands_seen(seen: Seen) -> dict[str, int]:
    counts = dict.fromkeys(COMMAND_TOPICS, 0)
    for topic, _ in seen:
        if topic in counts:
            counts[topic] += 1
    return counts


def no_event_lost(seen: Seen) -> list[str]:
    return [
        f"{topic}: {env.type} {env.event_id} has no outcome on {ANSWERED_ON[topic]}"
        for topic, envs in unanswered_commands(seen).items()
        for env in envs
    ]


def no_relay_storm(seen: Seen) -> list[str]:
    copies = Counter((topic, str(env.event_id)) for topic, env in seen)
    return [
        f"{topic}: event {event_id} published {n} times"
        for (topic, event_id), n in sorted(copies.items())
        if n > STORM_COPIES
    ]


def check_all(seen: Seen) -> dict[str, list[str]]:
    """Each invariant's name → what broke it (empty: it held)."""
    return {
        "no_deal_funded_twice": no_deal_funded_twice(seen),
        "every_negotiation_ended": every_negotiation_ended(seen),
        "every_deal_settled_or_refunded": every_deal_settled(seen),
        "no_event_lost": no_event_lost(seen),
        "no_relay_storm": no_relay_storm(seen),
    }
