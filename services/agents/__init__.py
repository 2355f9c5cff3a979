"""The agents service: buyer and seller agents acting for principals under a mandate.

The pure core lives here: `mandate` (what a principal allows), `view` (what a
brain may know), `brains` (strategies, Claude, a compromised brain), `guard`
(the mandate check every move passes) and `decide` (brain → guard → move).
"""
