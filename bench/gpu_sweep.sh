#!/usr/bin/env bash
# One GPU session's checks and measurements, in one call of the lent machine:
#   [SWEEP_BUDGET_S=560] bash bench/gpu_sweep.sh [tests|kernels|decode|prefetch|early|revsplitk|rsstep|quant|pprofile|attnsweep|fp8res|fp8row|skinny|ksuite|suite ...]   (default: all), results under $OUT
set -u
OUT=${OUT:-/tmp/braze-out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
steps=${*:-tests kernels decode}
# SWEEP_BUDGET_S: the call's time; a step is skipped (and named) once less than SWEEP_MIN_S is left,
# so a call cut short by its limit still ends cleanly with what it measured
budget=${SWEEP_BUDGET_S:-100000}; started=$SECONDS
for step in $steps; do
  left=$((budget - (SECONDS - started)))
  if [ "$left" -lt "${SWEEP_MIN_S:-90}" ]; then echo "== $step skipped: ${left} s of the budget left" | tee -a "$OUT/steps.log"; continue; fi
  step_start=$SECONDS
  case $step in
    tests)   timeout ${TESTS_TIMEOUT:-420} python3 -m pytest -q -p no:cacheprovider -rf --tb=line tests/codegen/triton tests/models/test_gpu_models.py tests/bench/test_int4_revsplitk.py \
               tests/frontend/test_torch_export.py tests/quant/test_quant_kernels.py 2>&1 | tail -40 | tee "$OUT/gpu-tests.log" ;;
    kernels) timeout 200 python3 tests/codegen/triton/test_matmul.py 2>&1 | tee "$OUT/matmul-bench.log" | tail -40 ;;
    sweep)   timeout 400 python3 bench/kernels/gemv_graph_sweep.py --model tinyllama,llama3-8b --budget-s 330 --out "$OUT/gemv-graph-sweep.json" 2>&1 | tail -40 ;;
    attention)
             timeout 200 python3 bench/kernels/attention_bench.py 2>&1 | tee "$OUT/attention-bench.log" | tail -30 ;;
    prefetch)  # decode step with 0 / 8 / 16 / 24 / 32 MB of weights pulled into L2 during each attention;
               # PREFETCH_QUANTS="bf16 int4-rtn-g128": the same for quantized weights
             for q in ${PREFETCH_QUANTS:-bf16}; do for mb in ${PREFETCH_MBS:-0 8 16 24 32 0 16}; do
               quant=""; [ "$q" = bf16 ] || quant="--quant $q"
               timeout 120 python3 bench/kernels/decode_profile.py --prefetch-mb "$mb" $quant --out /tmp/dp.json > /tmp/dp.log 2>&1 \
                 && python3 -c "import json; print(json.dumps(json.load(open('/tmp/dp.json'))))" >> "$OUT/prefetch-sweep.jsonl" \
                 || tail -20 /tmp/dp.log
               grep -E '"quant"|"prefetch_mb"|pipelined_step_ms|pct_roofline|_braze_attn_decode|matmul_' /tmp/dp.log | tr -s ' ' | paste -sd' '
             done; done ;;
    early)   # decode step with loads moved above griddepcontrol.wait: the GEMVs' first weight chunk, the attention's old rows;
             # EARLY_QUANTS="bf16 int4-rtn-g128"; EARLY_MICRO=0 skips the GEMV-chain micro-benchmark
             [ "${EARLY_MICRO:-1}" = 1 ] && timeout 200 python3 bench/kernels/early_weight_load.py --out "$OUT/early-weight-load.json" 2>&1 | tail -6
             # a setting is W (weights early) and K (old cache rows early), 0 or 1 each: "00 10 01 11"
             for q in ${EARLY_QUANTS:-bf16}; do for e in ${EARLY_SETTINGS:-00 10 01 11 00 11}; do
               quant=""; [ "$q" = bf16 ] || quant="--quant $q"
               BRAZE_EARLY_WEIGHTS=${e:0:1} BRAZE_EARLY_KV=${e:1:1} timeout 120 python3 bench/kernels/decode_profile.py $quant --out /tmp/dp.json > /tmp/dp.log 2>&1 \
                 && python3 -c "import json; d = json.load(open('/tmp/dp.json')); d['early'] = '$e'; print(json.dumps(d))" >> "$OUT/early-sweep.jsonl" \
                 || tail -20 /tmp/dp.log
               echo "early=$e $(grep -E '"quant"|pipelined_step_ms|pct_roofline|_braze_attn_decode|matmul_' /tmp/dp.log | tr -s ' ' | paste -sd' ')"
             done; done
             python3 - "$OUT/early-sweep.jsonl" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    runs.setdefault((d.get("quant") or "bf16", d["early"]), []).append(d["pipelined_step_ms"])
for (quant, early), ms in sorted(runs.items()):
    print(f"{quant} weights={early[0]} kv={early[1]}: step {statistics.median(ms):.4f} ms (runs {ms})")
PY
             ;;
    revsplitk)  # the int4 GEMV forms, the stand-alone revsplitK among them
             timeout 400 python3 bench/kernels/int4_gemv_variants.py --kernels revsplitk,int4 --out "$OUT/int4-gemv-revsplitk.json" 2>&1 | tail -40 ;;
    rsstep)  # the quantized decode step with the generated revsplitK GEMVs and without, alternating: the
             # setting (0, 1, auto) goes to the quant's own format, int8 (the int4 methods' LM head) stays off;
             # RS_QUANTS="int4-rtn-g128 int8", RS_FLAGS="0 auto 1"
             # RS_TILES="512,32,2,4 512,32,1,4": revsplitK tiles (BRAZE_REVSPLITK_TILE) tried in turn
             for t in ${RS_TILES:-512,32,2,4}; do for q in ${RS_QUANTS:-int4-rtn-g128}; do for f in ${RS_FLAGS:-0 auto 0 auto}; do
               if [ "$q" = int8 ]; then i4=0; i8=$f; else i4=$f; i8=0; fi
               BRAZE_REVSPLITK_TILE=$t BRAZE_INT4_REVSPLITK=$i4 BRAZE_INT8_REVSPLITK=$i8 timeout 150 python3 bench/kernels/decode_profile.py --quant $q --out /tmp/dp.json > /tmp/dp.log 2>&1 \
                 && python3 -c "import json; d = json.load(open('/tmp/dp.json')); d['revsplitk'] = '$f'; d['tile'] = '$t'; print(json.dumps(d))" >> "$OUT/revsplitk-step.jsonl" \
                 || tail -20 /tmp/dp.log
               echo "$q revsplitk=$f tile=$t $(grep -E 'pipelined_step_ms|pct_roofline|matmul_' /tmp/dp.log | tr -s ' ' | paste -sd' ')"
             done; done; done ;;
    quant)   timeout 400 python3 -m braze.bench.quant_bench --methods ${QUANT_METHODS:-int8,int4-rtn-g128,fp8} \
               --repeats ${QUANT_REPEATS:-3} --out "$OUT/${QUANT_OUT:-quant-cuda.json}" 2>&1 | tail -25 ;;
    pprofile)  # prefill GPU time by kernel, bf16 and fp8 (what the fp8 prefill ratio is made of)
             timeout 200 python3 bench/kernels/prefill_profile.py --methods ${PROFILE_METHODS:-bf16,fp8} 2>&1 | tail -40 \
               | tee "$OUT/prefill-profile.log" ;;
    attnsweep)  # prefill attention tiles (and heavy_first) at the suite's and a long prompt's length
             timeout 300 python3 bench/kernels/attention_config_sweep.py --seqs ${ATTN_SEQS:-512,2048} --dtypes bfloat16 --models ${ATTN_MODELS:-tinyllama-1.1b,qwen2.5-7b} \
               --out "$OUT/attention-config-sweep.json" 2>&1 | tail -8 ;;
    fp8res)  # fp8 projections with a residual: _scaled_mm + add (braze now) vs a Triton e4m3 GEMM adding it in its epilogue
             # then fp8 prefill end to end with its best TinyLlama config on (BRAZE_FP8_FUSED_ADD=1), against off
             timeout 240 python3 bench/kernels/fp8_residual_gemm.py --tokens ${FP8RES_TOKENS:-2048} --out "$OUT/fp8-residual-gemm.json" \
               --config-out /tmp/fp8-add-config 2>&1 | grep -v Warn | tail -12
             [ "${FP8RES_E2E:-1}" = 1 ] && [ -s /tmp/fp8-add-config ] && for f in 0 1; do
               BRAZE_FP8_FUSED_ADD=$f BRAZE_FP8_ADD_CONFIG=$(cat /tmp/fp8-add-config) timeout 200 python3 -m braze.bench.quant_bench \
                 --methods fp8 --no-gemv --repeats ${QUANT_REPEATS:-3} --out "$OUT/quant-fp8-fusedadd$f.json" 2>&1 | grep -E "prefill" | tail -4
             done ;;
    fp8row)  # fp8 prefill with the one-pass e4m3 prologue (BRAZE_FP8_ROW_PROLOGUE=1: the row in one block) and
             # without, alternating; then the prefill profile with it on
             for f in ${FP8ROW_FLAGS:-0 1 0 1}; do
               BRAZE_FP8_ROW_PROLOGUE=$f timeout 150 python3 -m braze.bench.quant_bench --methods fp8 --no-gemv \
                 --repeats ${QUANT_REPEATS:-3} --out "$OUT/quant-fp8-row$f.json" 2>&1 | grep -E "prefill" | sed "s/^/row=$f /" | tail -2
             done
             BRAZE_FP8_ROW_PROLOGUE=1 timeout 120 python3 bench/kernels/prefill_profile.py --methods fp8 2>&1 | grep -v -i warn | tail -14 ;;
    skinny)  timeout 300 python3 bench/kernels/skinny_splitk_sweep.py --seqs 1,32,128 --flush ${SKINNY_FLUSH:-dirty} --out "$OUT/skinny-splitk-sweep.json" 2>&1 | grep -v Warn | tail -40 ;;
    decode)  timeout 300 python3 bench/kernels/decode_profile.py --out "$OUT/decode-profile.json" 2>&1 | tail -45 ;;
    ksuite)  timeout ${KSUITE_TIMEOUT:-400} python3 -m braze.bench.suite.kernels --kernel-models ${KSUITE_MODELS:-tinyllama-1.1b} \
               --dtypes ${KSUITE_DTYPES:-bfloat16,float32} --seqs ${KSUITE_SEQS:-32,128,512} ${KSUITE_CASES:+--cases $KSUITE_CASES} \
               --kernel-peers ${KSUITE_PEERS:-braze,eager,compile,max-autotune} --merge --out "$OUT/kernels-cuda.json" 2>&1 | tail -70 ;;
    suite)   timeout 400 python3 -m braze.bench.suite --device cuda --models ${SUITE_MODELS:-tinyllama-1.1b} --out "$OUT/latest-cuda.json" 2>&1 | tail -40 ;;
    *)       echo "== unknown step $step (the steps: see this script's first lines)"; continue ;;
  esac
  echo "== $step took $((SECONDS - step_start)) s" | tee -a "$OUT/steps.log"
done
