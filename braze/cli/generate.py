"""`braze generate`: load, compile, stream the completion to stdout."""
from __future__ import annotations

import sys

from braze.api import LLM
from braze.cli.progress import load_progress
from braze.frontend.tokenizer import IncrementalDecoder
from braze.runtime.sampling import SamplingParams
from braze.runtime.stop import StopStringMatcher


def run_generate(args) -> int:
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seed=args.seed, stop=args.stop, ignore_eos=args.ignore_eos)
    with load_progress(sys.stderr.isatty()) as step:
        llm = LLM(args.model, device=args.device, dtype=args.dtype, max_model_len=args.max_model_len,
                  max_num_seqs=1, progress=step, quant=getattr(args, "quant", None))
    decoder = IncrementalDecoder(llm.tokenizer)
    matcher = StopStringMatcher(params.stop_strings)
    ids: list[int] = []

    def on_token(_request: int, token: int) -> None:
        ids.append(token)
        sys.stdout.write(matcher.feed(decoder.step(ids)))
        sys.stdout.flush()

    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
            [{"role": "user", "content": args.chat}]
        out = llm.chat(messages, params, on_token=on_token)
    else:
        out = llm.generate(args.prompt, params, on_token=on_token)
    tail = matcher.feed(decoder.flush(ids))
    if out[0].finish_reason != "stop" or not params.stop_strings:
        tail += matcher.flush()
    sys.stdout.write(tail + "\n")
    return 0
