"""The market report as rich terminal tables; one report, or several runs side by side."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from haggle.market.report import MarketReport, Surplus


def dollars(cents: int | None) -> str:
    if cents is None:
        return "n/a"
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.1%}"


def number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pairs(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


def _summary(report: MarketReport) -> Table:
    return _pairs(
        f"Market {report.market_id}",
        [
            ("participants", str(report.participants)),
            ("listings published / planned", f"{report.listings_published} / {report.listings_planned}"),
            ("wants", str(report.wants)),
            ("negotiations", str(report.negotiations)),
            ("deals agreed / settled", f"{report.deals_agreed} / {report.deals_settled}"),
            ("deals per negotiation", percent(report.completion.deals_per_negotiation)),
            ("listings sold", f"{report.listings_sold} ({percent(report.completion.listings_sold_share)})"),
            ("rounds median / p90", f"{number(report.rounds.median, 1)} / {report.rounds.p90 or 'n/a'}"),
            ("GMV agreed", dollars(report.money.gmv_agreed_cents)),
            ("GMV settled", dollars(report.money.gmv_settled_cents)),
            ("median price", dollars(report.money.median_price_cents)),
        ],
    )


def _outcomes(report: MarketReport) -> Table:
    a, s, d = report.approvals, report.settlements, report.disputes
    rows = [
        ("approvals requested", str(a.requested)),
        ("  granted / denied / expired / pending", f"{a.granted} / {a.denied} / {a.expired} / {a.pending}"),
        (
            "  answered in (median / p90)",
            f"{number(a.answer_seconds_median)} s / {number(a.answer_seconds_p90)} s",
        ),
        ("released / refunded / open", f"{s.released} / {s.refunded} / {s.open}"),
        ("escrow failed", str(s.escrow_failed)),
        *[(f"  {reason}", str(n)) for reason, n in s.escrow_failures_by_reason.items()],
        *[(f"refunded: {reason}", str(n)) for reason, n in s.refunds_by_reason.items()],
        ("disputes", str(d.total)),
        *[(f"  reason {reason}", str(n)) for reason, n in d.by_reason.items()],
        *[(f"  outcome {outcome}", str(n)) for outcome, n in d.by_outcome.items()],
        ("refused moves", str(report.refused_moves)),
    ]
    for source, counts in report.refusals.items():
        rows += [(f"  {source}: {reason}", str(n)) for reason, n in counts.items()]
    t = report.tokens
    if t.input_tokens + t.output_tokens + t.cache_read_tokens + t.cache_write_tokens:
        rows += [
            ("model tokens in / out", f"{t.input_tokens} / {t.output_tokens}"),
            ("  cache read / written", f"{t.cache_read_tokens} / {t.cache_write_tokens}"),
            ("  cache hit ratio", number(t.cache_hit_ratio)),
            (
                "  per negotiation / per deal",
                f"{number(t.tokens_per_negotiation)} / {number(t.tokens_per_deal)}",
            ),
            ("  estimated cost", f"${t.dollars_estimate:.4f}"),
        ]
    return _pairs("Approvals, settlement, disputes, refusals", rows)


def _budget_optimum(s: Surplus) -> str:
    """The budget-bound optimum, and how far the solver proved it from the true one when it stopped
    short (`optimum.BUDGET_GAP`): the true optimum is at most that much higher, the efficiency lower."""
    if s.budget_optimum_cents is None:
        return "not computed (too large)"
    shown = f"{dollars(s.budget_optimum_cents)} (efficiency {percent(s.budget_efficiency)})"
    if s.budget_optimum_gap:
        shown += f"; best found, the true optimum is at most {percent(s.budget_optimum_gap)} higher"
    return shown


def _surplus(report: MarketReport) -> Table:
    s = report.surplus
    return _pairs(
        "Surplus",
        [
            ("buyers", f"{dollars(s.buyers_cents)} ({percent(_part(s.buyers_cents, s.realised_cents))})"),
            ("sellers", f"{dollars(s.sellers_cents)} ({percent(_part(s.sellers_cents, s.realised_cents))})"),
            ("realised", dollars(s.realised_cents)),
            ("optimum", f"{dollars(s.optimum_cents)} over {s.optimum_trades} trades"),
            ("welfare efficiency", percent(s.efficiency)),
            ("optimum within budgets", _budget_optimum(s)),
            ("lost, by cause", dollars(s.optimum_cents - s.realised_cents)),
            *[
                (f"  {cause}", f"{dollars(cents)} ({percent(_part(cents, s.optimum_cents))})")
                for cause, cents in sorted(s.lost_cents.items(), key=lambda kv: -kv[1])
            ],
        ],
    )


def _part(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _variants(report: MarketReport) -> Table:
    table = Table(title="Variants", title_justify="left")
    costed = any(v.model_tokens for v in report.variants)
    columns = ["variant", "principals", "deals/principal", "price idx sell", "price idx buy", "surplus"]
    for column in [*columns, *(["model tokens", "model $"] if costed else [])]:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in report.variants:
        cost = [str(v.model_tokens), f"{v.dollars_estimate:.4f}"] if costed else []
        table.add_row(
            v.variant,
            str(v.principals),
            number(v.deals_per_principal),
            number(v.seller_price_index, 3),
            number(v.buyer_price_index, 3),
            f"{dollars(v.surplus_cents)} ({percent(v.surplus_share)})",
            *cost,
        )
    return table


def _invariants(report: MarketReport) -> Table:
    rows = [
        (name, "[green]held[/]" if held else "[red]BROKEN[/]") for name, held in report.invariants.items()
    ]
    return _pairs("Invariants", rows)


def render(report: MarketReport, console: Console | None = None) -> None:
    console = console or Console()
    for table in (_summary, _outcomes, _surplus, _variants, _invariants):
        console.print(table(report))


def render_comparison(reports: Sequence[MarketReport], console: Console | None = None) -> None:
    """Parallel runs side by side: one row per market."""
    table = Table(title="Runs compared", title_justify="left")
    for column in ("market", "variants", "deals", "deals/neg.", "GMV settled", "efficiency", "buyers' share"):
        table.add_column(column, justify="left" if column in ("market", "variants") else "right")
    for r in reports:
        table.add_row(
            r.market_id,
            ", ".join(v.variant for v in r.variants),
            str(r.deals_agreed),
            percent(r.completion.deals_per_negotiation),
            dollars(r.money.gmv_settled_cents),
            percent(r.surplus.efficiency),
            percent(_part(r.surplus.buyers_cents, r.surplus.realised_cents)),
        )
    (console or Console()).print(table)
