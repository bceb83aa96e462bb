#!/usr/bin/env bash
# One device session's checks on a CUDA machine: the test suite with device "auto" resolving to CUDA, then MBPO
# on Hopper-v5 (benchmark (c) of issue 7) for HOPPER_MINUTES. Wheels for packages the machine lacks are carried
# in .whl (gymnasium, mujoco); results go to $OUT (default benchmarks/results/gpu).
#   bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch, gymnasium, mujoco; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)" | tee -a "$OUT/machine.txt"
timeout "${TEST_SECONDS:-200}" python3 -m pytest -q -p no:cacheprovider -o addopts="-m 'not slow'" ${TESTS:-tests} \
    2>&1 | tee "$OUT/pytest_cuda.log" | tail -40
timeout $(( ${HOPPER_MINUTES:-4} * 60 + 120 )) python3 benchmarks/mbpo_hopper.py --minutes "${HOPPER_MINUTES:-4}" \
    --device cuda --checkpoint /tmp/mbpo_hopper_gpu.pt --name mbpo_hopper_h200
cp benchmarks/results/mbpo_hopper_h200.json benchmarks/results/mbpo_hopper_h200.png "$OUT"/ 2>/dev/null
ls "$OUT"
