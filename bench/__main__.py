"""`python -m bench`: every benchmark in a short form (`make bench`)."""

from __future__ import annotations

from bench import listing_throughput, negotiation_throughput, settlement_throughput

SHORT_RUNS = (
    (listing_throughput.main, ["--count", "1000"]),
    (negotiation_throughput.main, ["--pairs", "100"]),
    (settlement_throughput.main, ["--count", "500"]),
)


def main() -> None:
    for run, argv in SHORT_RUNS:
        print(f"== {run.__module__} {' '.join(argv)}", flush=True)
        run(argv)


if __name__ == "__main__":
    main()
