"""The red-team catalogue: hostile agents and messages, each checked against the invariant it attacks."""
