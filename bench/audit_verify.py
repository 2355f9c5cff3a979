"""`haggle audit verify` on a market of N deals: the time to check every signature of the export.

The market is made in memory with real Ed25519 keys (`haggle_lab.testing.audit_market`: per deal
three signed moves, three signed decision records, an operator-signed approval, a signed
settlement command, the parties' registrations; the mandates as digests), exported as
`haggle audit market` writes it, then verified as the CLI does: read the file, parse, check.
Target: 1,000 deals in at most 10 s.

    .venv/bin/python -m bench.audit_verify --deals 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from haggle.audit import export, index, verify_export
from haggle_lab.testing.audit_market import signed_market

TARGET_SECONDS = 10.0


def measure(deals: int) -> float:
    started = time.perf_counter()
    market, ids = signed_market(deals)
    data = export(index(market.records), market.market_id, ids, [market.operator.public])
    made = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "audit.json"
        path.write_text(json.dumps(data, indent=1, sort_keys=True))
        size = path.stat().st_size
        started = time.perf_counter()
        report = verify_export(json.loads(path.read_text()), [market.operator.public])
        took = time.perf_counter() - started
    assert report.ok, report.failures[:5]
    print(f"market of {deals} deals made and exported in {made:.2f} s ({size / 1e6:.1f} MB)")
    print(
        f"verify: {report.checked} signatures over {report.deals} deals in {took:.2f} s"
        f" ({report.checked / took:,.0f} signatures/s); target {TARGET_SECONDS:.0f} s for 1,000 deals:"
        f" {'met' if took * 1_000 / deals <= TARGET_SECONDS else 'MISSED'}"
    )
    return took


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_verify", description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000)
    args = parser.parse_args(argv)
    measure(args.deals)


if __name__ == "__main__":
    main()
