-- The intake interview's transcript and the form the model drafted, until the person submits it.
CREATE TABLE interviews (
    principal_id text PRIMARY KEY,
    messages     jsonb NOT NULL DEFAULT '[]',
    draft        jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
