"""What `braze explain` reports for each distinct kernel of a program: the graph ops fused into it,
the config chosen for each bucket and where it came from, predicted and measured time, bytes and
flops, the share of its roofline, and why the runner-up lost."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from braze.ir.kernel import Program
from braze.tune.choose import choose_config
from braze.tune.extract import program_key
from braze.tune.features import features, kernel_work
from braze.tune.knobs import config_label, config_text
from braze.tune.tuner import tunable_units


@dataclass
class KernelReport:
    kernels: list[str]          # every kernel of the program with this structure (one per layer)
    kind: str
    fused_ops: list[str]        # Kernel.sources: the graph ops in the kernel, prologue to epilogue
    weights: list[str]          # the model parameters it reads (first kernel of the group): which layer op it is
    bucket: int
    rows: int                   # M / tokens / rows it was measured or predicted at
    config: str
    source: str                 # db | model | heuristic
    predicted_us: float | None
    measured_us: float | None
    bytes: int
    flops: int
    roofline_us: float          # max(bytes / bandwidth, flops / peak)
    roofline_pct: float | None  # roofline_us / (measured, else predicted) time
    runner_up: str
    step: str = ""              # the step verdict on its measured best: "verified in step: ..." / "reverted: ..."

    def as_dict(self) -> dict:
        return asdict(self)


def _runner_up(chosen: dict, source: str, records, space_preds) -> str:
    ok = sorted((r for r in records if r.status == "ok"), key=lambda r: r.time_us)
    mine = next((r for r in ok if r.config == config_text(chosen)), None)
    if source == "db" or mine is not None:  # measured: what else was, and how it did
        others = [r for r in ok if r is not mine]
        failed = sum(1 for r in records if r.status != "ok")
        note = f"; {failed} candidates failed (wrong result, crash, timeout or error)" if failed else ""
        if not others:
            return f"only one candidate measured{note}"
        if mine is None or mine is ok[0]:
            best, second = ok[0], others[0]
            slower = 100.0 * (second.time_us / best.time_us - 1)
            return (f"{config_label(second.config_dict)}: measured {second.time_us:.1f} us, {slower:.1f}% slower "
                    f"({len(ok)} measured){note}")
        best = ok[0]  # faster alone, not chosen: its step verdict says why
        faster = 100.0 * (1 - best.time_us / mine.time_us)
        return (f"{config_label(best.config_dict)}: measured {best.time_us:.1f} us alone, {faster:.1f}% faster than "
                f"this config alone; not used, see the step verdict ({len(ok)} measured){note}")
    ordered = sorted(space_preds, key=lambda p: p[1])
    if source == "model" and len(ordered) > 1:
        (_, best), (config, second) = ordered[0], ordered[1]
        return f"{config_label(config)}: predicted {second:.1f} us vs {best:.1f} us (not measured)"
    if ordered and ordered[0][0] != chosen:
        config, best = ordered[0]
        return (f"the cost model's pick {config_label(config)} (predicted {best:.1f} us) is not measured or not "
                f"clearly faster; `braze tune` measures it")
    return "not tuned: no measurements and no cost model for this target; `braze tune` measures candidates"


def explain_program(program: Program, device, db=None, model=None, bandwidth: float = 0.0,
                    peak_flops: float = 0.0, model_picks: bool = True) -> list[KernelReport]:
    """One KernelReport per distinct (kernel structure, bucket) in program order; bandwidth in
    bytes/s and peak_flops in FLOP/s give the roofline (0: not known). The model predicts times;
    model_picks: whether its picks are used unmeasured (choose.picks_allowed), as LLM(...) does."""
    reports = []
    model_key = program_key(program)
    for unit in tunable_units(program, device):
        k = unit.kernel
        choice = choose_config(k, program, unit.bucket, unit.symbols, device, db, model if model_picks else None,
                               unit.key, model_key)
        work = kernel_work(k, program, unit.symbols, unit.bucket)
        records = db.records(unit.key, unit.bucket, device) if db is not None else []
        measured = next((r.time_us for r in records if r.status == "ok" and r.config == config_text(choice.config)),
                        None)
        space_preds, predicted = [], None
        if model is not None:
            preds = model.predict_us([unit.features(c, device) for c in unit.space])
            space_preds = list(zip(unit.space, preds))
            predicted = model.predict_us([features(k, program, unit.symbols, unit.bucket, choice.config, device)])[0]
        ceilings = [work["bytes"] / bandwidth if bandwidth else 0.0, work["flops"] / peak_flops if peak_flops else 0.0]
        roofline_us = 1e6 * max(ceilings)
        actual = measured or predicted
        reports.append(KernelReport(
            unit.kernels, k.kind, list(k.sources),
            sorted({v.buffer for v in k.operands if program.buffer(v.buffer).kind == "weight"}), unit.bucket, work["m"], config_label(choice.config), choice.source,
            predicted, measured, int(work["bytes"]), int(work["flops"]), roofline_us,
            100.0 * roofline_us / actual if actual and roofline_us else None,
            _runner_up(choice.config, choice.source, records, space_preds), choice.step))
    return reports


def plot_roofline(reports: list[KernelReport], bandwidth: float, peak_flops: float, path: str, title: str) -> None:
    """Roofline chart: achieved FLOP/s against arithmetic intensity, one point per kernel bucket."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    points = [(r.flops / max(r.bytes, 1), r.flops / ((r.measured_us or r.predicted_us) * 1e-6), r)
              for r in reports if (r.measured_us or r.predicted_us) and r.flops]
    lo = min([p[0] for p in points] + [0.05]) / 2
    hi = max([p[0] for p in points] + [peak_flops / max(bandwidth, 1) * 4 if bandwidth else 100]) * 2
    if bandwidth and peak_flops:
        xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        ax.plot(xs, [min(peak_flops, bandwidth * x) for x in xs], color="black", linewidth=1.5, label="roofline")
    colors = {"matmul": "tab:blue", "attention": "tab:red", "pointwise": "tab:green", "reduction": "tab:orange"}
    for intensity, achieved, r in points:
        ax.scatter(intensity, achieved, color=colors.get(r.kind, "gray"), marker="o" if r.measured_us else "x",
                   label=r.kind)
        ax.annotate(f"{r.kernels[0]}@{r.rows}", (intensity, achieved), fontsize=6, alpha=0.7)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("FLOP/s (o measured, x predicted)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
