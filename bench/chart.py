"""``latest.png``: latency and lost summaries per configuration (matplotlib).

Run as ``python -m bench.chart RESULTS.json OUT.png`` in any interpreter that
has matplotlib; it needs nothing else (not google-adk, not this package).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

LABELS = {"released": "released", "package": "+package", "patched": "patched"}


def _label(config: Dict[str, Any]) -> str:
    side = LABELS[config["side"]]
    if config["side"] == "package" and not (config.get("status") or {}).get("applied"):
        side += " (not applied)"
    return f"{config['release']} {side} | {config['database']} {config['client']}"


def draw(results: Dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [c for c in results["configs"] if "error" not in c][::-1]
    y = list(range(len(configs)))
    fig, (lat, lost) = plt.subplots(
        1,
        2,
        sharey=True,
        figsize=(14, 1.2 + 0.32 * len(configs)),
        gridspec_kw={"width_ratios": [3, 1]},
    )
    h = 0.38

    def values(key: str, part: str = "compaction") -> List[float]:
        return [_zero(c[part][key]) for c in configs]

    up, down = [i + h / 2 for i in y], [i - h / 2 for i in y]
    lat.barh(up, values("stream_p95_ms"), h, color="#f4a582", label="stream p95")
    lat.barh(up, values("stream_p50_ms"), h, color="#ca0020", label="stream p50")
    lat.barh(down, values("turn_p95_ms"), h, color="#92c5de", label="turn p95")
    lat.barh(down, values("turn_p50_ms"), h, color="#0571b0", label="turn p50")
    lat.scatter(
        values("turn_p95_ms", "baseline"),
        down,
        marker="|",
        s=200,
        color="black",
        zorder=3,
        label="turn p95 without compaction",
    )
    lat.set_xlabel("ms from message sent (turn: to final reply; stream: to its end)")
    lat.set_yticks(y)
    lat.set_yticklabels([_label(c) for c in configs], fontsize=8)
    lat.grid(axis="x", alpha=0.3)

    lost.barh(up, values("summaries_lost"), h, color="#7b3294", label="summaries lost")
    lost.barh(down, values("turns_failed"), h, color="#e66101", label="turns failed")
    lost.set_xlabel("count")
    lost.grid(axis="x", alpha=0.3)

    w = results["meta"]["workload"]
    fig.suptitle(
        f"{w['sessions']} sessions x {w['turns']} turns, summarizer "
        f"{w['summarizer_delay'] * 1000:.0f} ms, reply {w['reply_delay'] * 1000:.0f} ms"
    )
    handles = [
        *lat.get_legend_handles_labels()[0],
        *lost.get_legend_handles_labels()[0],
    ]
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=7,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.985 - 0.25 / fig.get_figheight()),
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    fig.savefig(out, dpi=110)
    plt.close(fig)


KEYS = ("startup", "import")


def draw_overheads(results: Dict[str, Any], out: Path) -> None:
    """Start-up and import ratios per release, with their targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.targets import IMPORT_LIMIT, STARTUP_LIMIT

    items = results["overheads"]
    x = list(range(len(items)))
    w = 0.38
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(items), 3.6))
    for shift, key, color, label in (
        (-w / 2, "startup", "#92c5de", "start-up (python -c pass)"),
        (w / 2, "import", "#0571b0", "import google.adk.runners"),
    ):
        medians = [_zero((i.get(key) or {}).get("median")) for i in items]
        low = [m - _zero((i.get(key) or {}).get("p25")) for m, i in zip(medians, items)]
        high = [
            _zero((i.get(key) or {}).get("p75")) - m for m, i in zip(medians, items)
        ]
        ax.bar([p + shift for p in x], medians, w, color=color, label=label)
        ax.errorbar(
            [p + shift for p in x], medians, yerr=[low, high], fmt="none", color="k"
        )
    ax.axhline(STARTUP_LIMIT, color="#92c5de", ls="--", lw=1)
    ax.axhline(IMPORT_LIMIT, color="#0571b0", ls="--", lw=1)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([f"google-adk {i['release']}" for i in items])
    ax.set_ylim(
        0.9,
        max(
            1.1,
            *[_zero((i.get(k) or {}).get("p75")) for i in items for k in KEYS],
        )
        + 0.01,
    )
    ax.set_ylabel("CPU time with / without the package")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Overheads (median, IQR; dashed: targets)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _zero(value: Optional[float]) -> float:
    return 0.0 if value is None else float(value)


def main(argv: Optional[List[str]] = None) -> int:
    args = list(argv or sys.argv[1:])
    overheads = "--overheads" in args
    source, out = [a for a in args if a != "--overheads"]
    results = json.loads(Path(source).read_text())
    (draw_overheads if overheads else draw)(results, Path(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
