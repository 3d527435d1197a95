"""Render the Grafana dashboard's panels to one PNG from a real Prometheus (for the README).

    python -m tools.dashboard_snapshot --prometheus http://127.0.0.1:9090 --minutes 10 --out docs/dashboard.png

It reads the queries from deploy/grafana/dashboards/attention-serve.json, so the picture shows exactly what the
dashboard shows, substituting Grafana's variables the way the integration test does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import httpx

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "attention-serve.json"


def substitute(expr: str, rate_interval: str) -> str:
    return expr.replace("$__rate_interval", rate_interval).replace('"$application"', '".*"')


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate-interval", default="30s")
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    args = parser.parse_args(argv)

    panels = json.loads(DASHBOARD.read_text())["panels"]
    end = time.time()
    start = end - 60 * args.minutes
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for target in panel["targets"]:
            reply = httpx.get(
                f"{args.prometheus}/api/v1/query_range",
                params={"query": substitute(target["expr"], args.rate_interval), "start": start, "end": end,
                        "step": 5},
                timeout=30,
            ).json()  # fmt: skip
            for series in reply.get("data", {}).get("result", []):
                times = [(float(t) - start) / 60 for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                ax.plot(times, values, label=legend(target.get("legendFormat", ""), series["metric"]))
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel("minutes", fontsize=7)
        ax.tick_params(labelsize=7)
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    figure.suptitle("attention-serve dashboard (rendered from Prometheus)", fontsize=11)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80)
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
