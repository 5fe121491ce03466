"""`braze serve`: load and compile the model, then serve the OpenAI API with uvicorn."""
from __future__ import annotations

import os
import sys

from braze.api import LLM
from braze.cli.progress import load_progress


def add_serve_args(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("BRAZE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1 (default: $BRAZE_API_KEY; none: open)")
    p.add_argument("--served-model-name", default=None,
                   help="the name clients ask for (default: the --model argument's last path part)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="requests decoded together")
    p.add_argument("--max-num-batched-tokens", type=int, default=512,
                   help="tokens per model step (prompt chunks + one per decoding request)")
    p.add_argument("--kv-block-size", type=int, default=None,
                   help="a paged KV cache of blocks of this many tokens, with prefix caching (default: one "
                        "max-model-len slot per sequence)")
    p.add_argument("--num-kv-blocks", type=int, default=None,
                   help="blocks in the paged cache (default: enough for max-num-seqs full contexts; fewer "
                        "admits as many requests and preempts when they grow past it)")
    p.add_argument("--no-batch-invariant", dest="batch_invariant", action="store_false", default=None,
                   help="let GPU kernels pick their reduction order by the step's size (faster; a request's "
                        "output may then change in the last bits with what else is in the batch)")


def served_name(model: str) -> str:
    return os.path.basename(os.path.normpath(model)) or model


def run_serve(args) -> int:
    import uvicorn

    from braze.serve import build_app

    with load_progress(sys.stderr.isatty()) as step:
        llm = LLM(args.model, device=args.device, dtype=args.dtype, max_model_len=args.max_model_len,
                  max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens, progress=step,
                  quant=getattr(args, "quant", None), kv_block_size=args.kv_block_size,
                  num_kv_blocks=args.num_kv_blocks, batch_invariant=getattr(args, "batch_invariant", None))
    name = args.served_model_name or served_name(args.model)
    app = build_app(llm, name, api_key=args.api_key)
    cache = f"paged KV cache, {args.kv_block_size}-token blocks" if args.kv_block_size else "slot KV cache"
    print(f"braze: serving {name!r} ({llm.device}, {llm.dtype}, context {llm.max_model_len}, "
          f"{args.max_num_seqs} sequences, {cache}) on http://{args.host}:{args.port}/v1", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
