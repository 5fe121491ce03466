"""The batch-invariance switch: on by default, off by BRAZE_BATCH_INVARIANT=0 or `braze serve
--no-batch-invariant` (what the pass does to kernels: tests/codegen/triton/test_batch_invariant.py)."""
from __future__ import annotations

from braze.cli.main import build_parser
from braze.passes.batch_invariant import batch_invariant_default


def test_default_is_on_unless_the_environment_turns_it_off(monkeypatch):
    monkeypatch.delenv("BRAZE_BATCH_INVARIANT", raising=False)
    assert batch_invariant_default()
    monkeypatch.setenv("BRAZE_BATCH_INVARIANT", "0")
    assert not batch_invariant_default()
    monkeypatch.setenv("BRAZE_BATCH_INVARIANT", "1")
    assert batch_invariant_default()


def test_serve_flag():
    parser = build_parser()
    assert parser.parse_args(["serve", "--model", "m"]).batch_invariant is None  # LLM's default decides
    assert parser.parse_args(["serve", "--model", "m", "--no-batch-invariant"]).batch_invariant is False


def test_one_sequence_at_a_time_keeps_the_fast_kernels(tiny_checkpoints, monkeypatch):
    # with one sequence slot no step holds two requests: invariance needs no special kernels
    import braze
    monkeypatch.delenv("BRAZE_BATCH_INVARIANT", raising=False)
    path = str(tiny_checkpoints["llama"])
    assert not braze.LLM(path, device="cpu", max_model_len=32, max_num_seqs=1).batch_invariant
    assert braze.LLM(path, device="cpu", max_model_len=32, max_num_seqs=2).batch_invariant
