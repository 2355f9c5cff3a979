"""haggle.runtime: settings, Kafka and PostgreSQL plumbing, inbox/outbox, HTTP, logs."""
