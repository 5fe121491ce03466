"""The suite's results as a table (rich when it can draw to a terminal, plain text otherwise)."""
from __future__ import annotations


def _num(v, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def table_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    head = ["model", "decode braze", "compile", "eager", "hf", "roofline", "braze %roof",
            f"prefill{result.get('prefill_len', 2048)} braze", "compile", "eager", "hf", "cold s", "warm s"]
    rows = []
    for m in result["models"]:
        d, p = m["decode_bs1"], m["prefill_2048"]
        pct = (m.get("pct_of_roofline") or {}).get("braze")
        rows.append([m["model"], _num(d["braze_tok_s"]), _num(d["torch_compile_tok_s"]),
                     _num(d["torch_eager_tok_s"]), _num(d["hf_tok_s"]), _num(d["roofline_tok_s"]),
                     "-" if pct is None else f"{pct:.0f}%",
                     _num(p["braze_tok_s"]), _num(p["torch_compile_tok_s"]), _num(p["torch_eager_tok_s"]),
                     _num(p.get("hf_tok_s")), _num(m["compile_cold_s"], 1), _num(m["compile_warm_s"], 1)])
    return head, rows


def _title(result: dict) -> str:
    c = result["ceilings"]
    copy = "-" if c["copy_TBps"] is None else f"{c['copy_TBps']:.2f} TB/s"
    mm = "-" if c["bf16_matmul_TFLOPs"] is None else f"{c['bf16_matmul_TFLOPs']:.0f} TFLOP/s"
    return (f"{result['device']} | torch {result['torch']} triton {result['triton']} braze {result['braze']} | "
            f"copy {copy}, bf16 matmul {mm} | tok/s, batch 1, prompt {result['prompt_len']}, "
            f"{result['new_tokens']} new")


def print_table(result: dict, say=print) -> None:
    head, rows = table_rows(result)
    try:
        from rich.console import Console
        from rich.table import Table

        if say is not print:
            raise ImportError  # a custom sink gets plain text
        table = Table(title=_title(result))
        for i, h in enumerate(head):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        console = Console()
        if not console.is_terminal:  # a log file: do not squeeze the table into 80 columns
            console = Console(width=200)
        console.print(table)
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        say(_title(result))
        for r in [head, *rows]:
            say("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for m in result["models"]:
        for peer, err in (m.get("errors") or {}).items():
            say(f"{m['model']}: {peer} failed: {err}")
    for what, err in (result.get("errors") or {}).items():
        say(f"ceiling {what} failed: {err}")
