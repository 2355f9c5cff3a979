"""`python -m bench`: every benchmark in a short form (`make bench`)."""

from __future__ import annotations

from bench import (
    audit_verify,
    event_ids,
    gateway_mcp,
    kafka_ceiling,
    listing_throughput,
    negmas_peer,
    negotiation_throughput,
    payments_throughput,
    postgres_ceiling,
    scale,
    settlement_throughput,
    sim_market,
    web_pages,
)

SHORT_RUNS = (
    (listing_throughput.main, ["--count", "1000"]),
    (negotiation_throughput.main, ["--pairs", "100"]),
    (settlement_throughput.main, ["--count", "500"]),
    (payments_throughput.main, ["--count", "200"]),
    (kafka_ceiling.main, ["--pairs", "100"]),
    (postgres_ceiling.main, ["--count", "500"]),
    (event_ids.main, ["--rows", "100000", "--batches", "500"]),
    (negmas_peer.main, ["--count", "20"]),
    (sim_market.main, ["--seeds", "20"]),
    (scale.main, ["search", "--listings", "100000", "--queries", "20"]),
    (scale.main, ["open", "--negotiations", "1000", "--buyers", "20"]),
    (audit_verify.main, ["--deals", "1000"]),
    (gateway_mcp.main, ["--runs", "3"]),
    (web_pages.main, ["--listings", "200", "--principals", "50", "--requests", "300", "--streams", "50"]),
)


def main() -> None:
    for run, argv in SHORT_RUNS:
        print(f"== {run.__module__} {' '.join(argv)}", flush=True)
        run(argv)


if __name__ == "__main__":
    main()
