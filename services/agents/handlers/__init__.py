"""Agent handlers: lifecycle (mandates, admission, listings), turns (negotiation), settlement reactions."""
