"""The agents service: buyer and seller agents acting for principals under a mandate.

The pure core is `domain` (an agent's negotiation and its statuses, the budget, the rules of
shopping, purchases and one turn: brain → guard → move); `brains` (strategies, model-backed
brains, a compromised brain) and the guard (`haggle.guard`) plug into it. `handlers` load state,
call the domain and save what it returns; `app` wires them (one `Toolkit` per app).
"""
