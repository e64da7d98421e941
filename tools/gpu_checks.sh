#!/usr/bin/env bash
# Issue #28's GPU checks as one device call, after tools/prepare_gpu_checks.sh built .gpu/:
# the CUDA tests (half precision reads >= 99.5 % of float32's lines), the bulk throughput of the
# v4 mobile pipeline in float16 / float32 / bfloat16 and of the v5 server pipeline in float16
# (tools/bench.py --device cuda --bulk-pipeline ...), and which float32 islands keep a 16-bit
# detector's boxes (tools.float32_islands). Logs and tables go to
# $OUT (the device tool's folder; ./gpu_out elsewhere), each step with its own time limit so the
# whole stays under ten minutes. PTOCR_CHECK_DEVICE=cpu runs the same steps on a CPU (a dry run).
set -u
out=${OUT:-gpu_out}
mkdir -p "$out"
device=${PTOCR_CHECK_DEVICE:-cuda}
export PYTHONUNBUFFERED=1 PTOCR_SHARED="$PWD/.gpu/shared" PTOCR_CACHE=/tmp/ptocr-cache
if [ "$device" != cpu ] && ls .gpu/whl/*.whl > /dev/null 2>&1; then  # a CPU dry run uses this environment
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
{ nvidia-smi 2>&1 | head -15; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
    > "$out/machine.txt"
cat "$out/machine.txt"

step() {  # step NAME SECONDS COMMAND...: its log in $OUT/NAME.log, its tail here
    local name=$1 limit=$2
    shift 2
    echo "== $name ($limit s)"
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    echo "rc=$?" >> "$out/$name.log"
    tail -n 12 "$out/$name.log"
}

# In order of what issue #28 needs most, so a step cut short by the device's time costs the least:
# the agreement tests, the two throughput targets (float16), then the float32 islands and the
# v4 pipeline's other dtypes. The limits add up to 560 s.
step cuda_tests 140 python3 -m pytest -q -p no:cacheprovider -o addopts="-ra" -k cuda \
    tests/test_bulk_precision.py tests/test_precision.py
bulk() {  # bulk PIPELINE DTYPE SECONDS
    step "bulk_$1_$2" "$3" python3 -m tools.bench --shared .gpu/shared --skip stages e2e load precision \
        --bulk-pipeline "$1" --device "$device" --dtype "$2" --repeat 20 --out "$out/benchmarks.md"
}
bulk v4-mobile float16 90
bulk v5-server float16 120
step islands 90 python3 -m tools.float32_islands --shared .gpu/shared --device "$device" \
    --islands "" head backbone backbone.conv1,head
bulk v4-mobile float32 60
bulk v4-mobile bfloat16 60
