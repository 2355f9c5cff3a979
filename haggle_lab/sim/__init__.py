"""`haggle sim`: the services' pure cores in one process, on an in-memory bus and a simulated clock.

- `clock.Clock`: simulated time; steps taken in time order, nothing sleeps.
- `bus.Bus`: the topics, with envelopes stamped by the clock and counted ids.
- `referee.Referee`, `listing.Listings`, `settlement.Settlement`: the negotiation, listing and
  settlement domains (`services/*/domain`) with their state in memory.
- `agents.Agents`: the agents' brains, guard and pure rules, wired as the handlers wire them.
- `engine.simulate`: a whole market, reported by `haggle.market.report` as `market run` does.
"""
