"""braze.tune: the step between Kernel IR and codegen that picks each kernel's launch parameters.

    space.py        the legal configs of a kernel's bucket, per kind and target, and the heuristic's
    knobs.py        Knobs: the chosen config per bucket (and its source), a kernel attr the emitters read
    extract.py      a kernel as a stand-alone Task (structure key: the same kernel in every layer)
    workers.py      measurement in worker processes (crash / hang / wrong result cost one candidate)
    kernel_bench.py inputs, the Kernel IR interpreter's reference, timing (CUDA graphs + events, or perf_counter)
    db.py           the SQLite tuning database under the braze cache dir (WAL, export/import JSON lines)
    features.py     what the cost model sees: work (flops, bytes), knobs, programs, waves, occupancy
    cost_model.py   gradient-boosted trees (LightGBM, else scikit-learn) on log time; the shipped model
    tuner.py        tune a program: rank by the model, measure the top share, record as measured
    step.py         time a model's whole steps as LLM(...) runs them (CUDA-graph decode, prefill, C++ step)
    verify.py       keep a measured best only where the step is faster with it; verdicts into the db
    choose.py       the pipeline's tune step: step-verified db best > model pick > heuristic, per kernel and bucket
    explain.py      per kernel: fused ops, chosen config and why, time vs roofline
    programs.py     the program LLM(...) would compile, for `braze tune` / `braze explain`
    train_shipped.py  retrain the shipped model from measurement files (CPU fixture + GPU records)

`braze tune --model M --device D` and `braze explain --model M` are the command lines.
"""
