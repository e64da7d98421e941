#!/usr/bin/env bash
# Builds .gpu/ (kept out of git) for tools/gpu_checks.sh, here, before a session's one device call:
# the real models, programs and scenes the checks read (../shared does not travel to the device machine)
# and wheels of the dependencies its image lacks (pyclipper, shapely, pypdfium2, python-bidi; cp312 x86-64).
#
#     bash tools/prepare_gpu_checks.sh [SHARED]        # SHARED: default ../shared
#     device run: command "bash tools/gpu_checks.sh", carry [".gpu"], timeout_s 600
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu
mkdir -p .gpu/whl .gpu/shared/paddle_models .gpu/shared/images
mkdir -p .gpu/shared/paddle_graphs
for m in ch_PP-OCRv4_det_infer ch_PP-OCRv4_rec_infer ch_ppocr_mobile_v2.0_cls_infer ch_ppocr_mobile_v2.0_det_infer \
         PP-OCRv5_mobile_det_infer PP-LCNet_x0_25_textline_ori_infer; do
    cp -r "$shared/paddle_models/$m" .gpu/shared/paddle_models/
done
# The v5 server programs without weights: seeded on the device (tools/bulk_stand_in.py), as their
# 170 MB of float32 weights would not fit what a device call carries.
for m in PP-OCRv5_server_det_infer PP-OCRv5_server_rec_infer; do
    cp -r "$shared/paddle_graphs/$m" .gpu/shared/paddle_graphs/
done
cp -r "$shared/images/scenes" "$shared/images/words" .gpu/shared/images/
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl "pyclipper==$(version pyclipper)" "shapely==$(version shapely)" "pypdfium2==$(version pypdfium2)" \
    "python-bidi==$(version python-bidi)"
du -sh .gpu
