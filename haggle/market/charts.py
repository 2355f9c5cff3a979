"""The market report as pictures: server-side SVG charts (matplotlib) in one self-contained HTML page.

`render_html` takes the report as JSON data (one market's dict, or a list of them to
compare) and draws what is there, so a report with new fields still renders:
- the surplus waterfall from `surplus.lost_cents` (cause → cents), else the split;
- settlements, approvals, disputes and refusals as bars;
- variants side by side;
- when present, `deals` (price against reference value, deals and GMV over time) and
  `concessions` (offers by round per series);
- every other number in a table.
The page has no script and no external resource: it opens anywhere, offline.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "haggle-matplotlib"))

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from jinja2 import Environment, select_autoescape
from markupsafe import Markup

Report = Mapping[str, Any]
INK, GOOD, BAD, ACCENT = "#1d2330", "#067647", "#b42318", "#2f6fde"
plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "haggle",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#9ca3af",
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
    }
)


def _svg(fig: Any) -> Markup:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return Markup(text[text.index("<svg") :])


def _money(cents: int) -> str:
    whole, part = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}${whole:,}.{part:02d}"


def _dollars(cents: float) -> float:
    """A chart's coordinate (drawing only: no amount is computed from it)."""
    return cents / 100


def waterfall(surplus: Mapping[str, Any]) -> Markup | None:
    """Optimum → each cause of lost surplus → realised; without causes, the split of what was realised."""
    optimum, realised = surplus.get("optimum_cents"), surplus.get("realised_cents")
    if not isinstance(optimum, int) or not isinstance(realised, int):
        return None
    lost = surplus.get("lost_cents")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if isinstance(lost, Mapping) and lost:
        labels, level = ["optimum"], optimum
        ax.bar(0, _dollars(optimum), color=ACCENT)
        for i, (cause, cents) in enumerate(sorted(lost.items(), key=lambda kv: -int(kv[1])), start=1):
            ax.bar(i, -_dollars(int(cents)), bottom=_dollars(level), color=BAD)
            level -= int(cents)
            labels.append(str(cause).replace("_", " "))
        ax.bar(len(labels), _dollars(realised), color=GOOD)
        labels.append("realised")
    else:
        parts = {
            "optimum": optimum,
            "realised": realised,
            "buyers": surplus.get("buyers_cents", 0),
            "sellers": surplus.get("sellers_cents", 0),
        }
        labels = list(parts)
        ax.bar(
            range(len(parts)), [_dollars(int(v or 0)) for v in parts.values()], color=[ACCENT, GOOD, INK, INK]
        )
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("dollars")
    ax.set_title("Surplus: the optimum, what was lost and why, what was realised")
    return _svg(fig)


def bars(title: str, counts: Mapping[str, Any]) -> Markup | None:
    items = [(str(k).replace("_", " "), v) for k, v in counts.items() if isinstance(v, int | float) and v]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(5, 0.4 + 0.32 * len(items)))
    ax.barh([k for k, _ in items], [v for _, v in items], color=ACCENT)
    ax.invert_yaxis()
    ax.set_title(title)
    return _svg(fig)


def variants(rows: Sequence[Mapping[str, Any]]) -> Markup | None:
    if len(rows) < 2:
        return None
    names = [str(r.get("variant")) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    axes[0].bar(names, [float(r.get("deals_per_principal") or 0) for r in rows], color=ACCENT)
    axes[0].set_title("deals per principal")
    axes[1].bar(names, [_dollars(int(r.get("surplus_cents") or 0)) for r in rows], color=GOOD)
    axes[1].set_title("surplus (dollars)")
    return _svg(fig)


def price_against_reference(deals: Sequence[Mapping[str, Any]]) -> Markup | None:
    points = [
        (_dollars(d["reference_cents"]), _dollars(d["price_cents"]))
        for d in deals
        if isinstance(d.get("reference_cents"), int) and isinstance(d.get("price_cents"), int)
    ]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color=ACCENT, s=14)
    top = max(max(p) for p in points) * 1.05
    ax.plot([0, top], [0, top], color="#9ca3af", linewidth=1, linestyle="--")
    ax.set_xlabel("catalogue value ($)")
    ax.set_ylabel("price ($)")
    ax.set_title("Price against reference value, per deal")
    return _svg(fig)


def over_time(deals: Sequence[Mapping[str, Any]]) -> Markup | None:
    dated = sorted(
        (datetime.fromisoformat(str(d["agreed_at"])), int(d.get("price_cents") or 0))
        for d in deals
        if d.get("agreed_at")
    )
    if not dated:
        return None
    fig, ax = plt.subplots(figsize=(7, 2.8))
    times = mdates.date2num([t for t, _ in dated])  # type: ignore[no-untyped-call]
    ax.plot(times, range(1, len(dated) + 1), drawstyle="steps-post", marker=".", color=ACCENT, label="deals")
    ax.set_ylabel("deals")
    gmv = ax.twinx()
    total, running = 0, []
    for _, cents in dated:
        total += cents
        running.append(_dollars(total))
    gmv.plot(times, running, drawstyle="steps-post", marker=".", color=GOOD, label="GMV ($)")
    gmv.set_ylabel("GMV ($)")
    ax.set_title("Deals and GMV over time")
    ax.xaxis_date()
    fig.autofmt_xdate()
    return _svg(fig)


def concessions(offers: Sequence[Mapping[str, Any]]) -> Markup | None:
    """Mean offer by round, one line per series (a variant and side, say)."""
    series: dict[str, dict[int, list[int]]] = {}
    for offer in offers:
        if isinstance(offer.get("round"), int) and isinstance(offer.get("price_cents"), int):
            by_round = series.setdefault(str(offer.get("series", "offers")), {})
            by_round.setdefault(offer["round"], []).append(offer["price_cents"])
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    for name, by_round in sorted(series.items()):
        rounds = sorted(by_round)
        ax.plot(
            rounds, [_dollars(sum(by_round[r]) / len(by_round[r])) for r in rounds], marker="o", label=name
        )
    ax.set_xlabel("round")
    ax.set_ylabel("mean offer ($)")
    ax.set_title("Concession curves")
    ax.legend(frameon=False)
    return _svg(fig)


def figures(report: Report) -> list[tuple[str, Markup]]:
    """Every chart this report has the data for, in reading order."""
    found = report.get("deals")
    deals: list[Mapping[str, Any]] = found if isinstance(found, list) else []
    settlements = {k: v for k, v in (report.get("settlements") or {}).items() if isinstance(v, int)}
    disputes: Mapping[str, Any] = report.get("disputes") or {}
    candidates = [
        ("Surplus", waterfall(report.get("surplus") or {})),
        ("Price against reference", price_against_reference(deals)),
        ("Concessions", concessions(report.get("concessions") or [])),
        ("Over time", over_time(deals)),
        ("Variants", variants(report.get("variants") or [])),
        (
            "Settlements",
            bars("Settlement outcomes", {k: v for k, v in settlements.items() if isinstance(v, int)}),
        ),
        ("Approvals", bars("Approvals", report.get("approvals") or {})),
        (
            "Disputes by reason",
            bars("Disputes by reason", disputes.get("by_reason") or {}),
        ),
        (
            "Disputes by outcome",
            bars("Dispute outcomes", disputes.get("by_outcome") or {}),
        ),
        ("Refused moves", bars("Refused moves by reason", _flat(report.get("refusals") or {}))),
    ]
    return [(title, svg) for title, svg in candidates if svg is not None]


def _flat(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= _flat(value, f"{name}: ")
        else:
            flat[name] = value
    return flat


def numbers(report: Report) -> list[tuple[str, str]]:
    """Every scalar in the report, flattened (cents shown as dollars), for the table under the charts."""
    rows = []
    for key, value in _flat({k: v for k, v in report.items() if not isinstance(v, list)}).items():
        if isinstance(value, bool) or not isinstance(value, int | float | str) or value is None:
            rows.append((key, str(value)))
        elif key.endswith("_cents") and isinstance(value, int):
            rows.append((key, _money(value)))
        elif isinstance(value, float):
            rows.append((key, f"{value:.3f}"))
        else:
            rows.append((key, str(value)))
    return rows


PAGE = Path(__file__).with_name("report_page.html")


def render_html(reports: Report | Sequence[Report]) -> str:
    """One self-contained HTML page for one market's report, or several side by side."""
    many = [reports] if isinstance(reports, Mapping) else list(reports)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    markets = [(report, figures(report), numbers(report)) for report in many]
    return env.from_string(PAGE.read_text(encoding="utf-8")).render(markets=markets)
