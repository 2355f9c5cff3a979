-- A MoveDecided whose agent is not registered here yet (agent.decisions and agent.events are
-- separate topics): kept whole, signature unchecked, until that agent's registration arrives and
-- its key can check it; then shown or dropped, and deleted either way.
CREATE TABLE pending_decisions (
    event_id    uuid PRIMARY KEY,
    agent_id    text NOT NULL,
    envelope    jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_decisions_agent ON pending_decisions (agent_id);
