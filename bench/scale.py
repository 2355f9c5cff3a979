"""Scale: listing search latency at 1,000,000 listings; memory and throughput with many open negotiations.

.venv/bin/python -m bench.scale search --listings 1000000 --queries 100
.venv/bin/python -m bench.scale open --negotiations 10000
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from haggle import infra


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    search = sub.add_parser("search", help="search p50/p99 over N bulk-loaded listings")
    search.add_argument("--listings", type=int, default=1_000_000)
    search.add_argument("--queries", type=int, default=100, help="requests per query shape")
    opened = sub.add_parser("open", help="RSS of every service and throughput with N open negotiations")
    opened.add_argument("--negotiations", type=int, default=10_000)
    opened.add_argument("--buyers", type=int, default=100)
    args = parser.parse_args(argv)
    found = infra.up()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.part == "search":
        from bench import scale_search

        scale_search.run(found.database_url, args.listings, args.queries)
    else:
        from bench import scale_open

        scale_open.run(found.kafka_bootstrap, found.database_url, args.negotiations, args.buyers)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
