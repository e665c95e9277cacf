"""The figure: output throughput against concurrency, one panel per core layout (shared, isolated)."""

from __future__ import annotations

from pathlib import Path

PANEL_TITLES = {
    "shared": "Shared cores: engine, DRUM and client\non the same {cpus} CPUs",
    "isolated": "Isolated (like a GPU host): engine on its own core(s),\nDRUM and client on the others",
}

EXTERNAL_TITLE = "Engine at {engine};\nDRUM and client on this machine's {cpus} CPUs"


def plot(facts: dict, phases: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(phases), figsize=(max(6.2 * len(phases), 8.5), 5.6), squeeze=False)
    for panel, phase in zip(axes[0], phases, strict=False):
        title = EXTERNAL_TITLE if facts["engine_kind"] == "external" else PANEL_TITLES[phase.mode]
        _panel(panel, phase, title.format(cpus=facts["cpus"], engine=facts["engine"]))
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(phases) + 1, frameon=False)
    gpus = "; ".join(facts["gpus"]) or "no GPU"
    figure.suptitle(f"Output tokens/s against requests in flight (higher is better)\n{facts['engine_kind']} engine, "
                    f"{facts['model']}, max_tokens {facts['max_tokens']}, {facts['cpus']} CPUs, {gpus}, "
                    f"{facts['date'][:10]}", fontsize=10)
    figure.tight_layout(rect=(0, 0.1 if len(phases) > 1 else 0.16, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _panel(axes, phase, title: str) -> None:
    from matplotlib.ticker import FuncFormatter

    def line(runs, style, label):
        axes.plot([r.concurrency for r in runs], [r.output_token_throughput for r in runs], style, label=label)

    line(phase.streamed, "o-", "direct client, streamed")
    line(phase.not_streamed, "s-", "direct client, not streamed")
    line(phase.chat, "^--", "chat through drum server, streamed")
    best = max(phase.streamed + phase.not_streamed, key=lambda r: r.output_token_throughput)
    axes.axhline(best.output_token_throughput, color="grey", linestyle=":", linewidth=1,
                 label="the limit (best direct run)")
    axes.annotate(f"the limit: {best.output_token_throughput:.0f}", (1, best.output_token_throughput),
                  textcoords="offset points", xytext=(0, -11), fontsize=8, color="grey")
    _point(axes, phase.ours, "*", 260, "green", "ours: batch /predictions")
    _point(axes, phase.builtin, "X", 140, "red", "DRUM built-in /predictions (row by row)")
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_xlabel("concurrency (requests in flight)")
    axes.set_ylabel("output tokens / s")
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)


def _point(axes, run, marker: str, size: int, color: str, label: str) -> None:
    value = run.output_token_throughput
    axes.scatter([run.concurrency], [value], marker=marker, s=size, color=color, label=label, zorder=3)
    axes.annotate(f"{value:.0f}", (run.concurrency, value), textcoords="offset points", xytext=(8, -4), fontsize=8)
