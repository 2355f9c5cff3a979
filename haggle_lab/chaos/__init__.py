"""Chaos runs: a market under injected faults (kill -9, broker and database restarts), then the invariants."""
