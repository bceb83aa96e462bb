#!/usr/bin/env bash
# Reference run of mbrl-lib 0.2.0's MBPO (facebookresearch/mbrl-lib) on Hopper-v4, in mbrl-lib's own Hopper
# configuration, on this machine: eval return, the SAC critics' mean Q and seconds per 1,000-step epoch, as JSON.
# Builds a private venv outside the repo on first use (log: <venv>.install.log): torch 2.13.0 first (the local
# CPU wheel), mbrl 0.2.0 without its pins (hydra-core 1.0.3 fails on Python 3.11), then hydra-core 1.3,
# omegaconf 2.3, gymnasium 0.26.3 and mujoco 2.3.3 (2.3.4+ rejects the global coordinates in 0.26.3's hopper.xml).
# Usage (from the repo root):
#   OMP_NUM_THREADS=1 benchmarks/anchors/mbrl_lib_mbpo_hopper.sh --steps 15000 --seed 0 --threads 1 \
#       --out benchmarks/results/mbrl_lib_mbpo_hopper_s0.json
# See the docstring of mbrl_lib_mbpo_hopper.py for the options (--set for config overrides, --eval-episodes).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${MBRL_MBPO_VENV:-/tmp/mbrl-lib-mbpo-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mbrl, mujoco, gymnasium" 2>/dev/null; then
  log=$venv.install.log
  echo "building the mbrl-lib venv at $venv (log: $log)" >&2
  { python3 -m venv "$venv" \
    && "$venv/bin/pip" install torch==2.13.0 \
    && "$venv/bin/pip" install --no-deps mbrl==0.2.0 \
    && "$venv/bin/pip" install "omegaconf>=2.3" "hydra-core>=1.3" "gymnasium==0.26.3" "numpy<2" termcolor tqdm \
         matplotlib imageio "mujoco==2.3.3"
  } >"$log" 2>&1 || { echo "installing mbrl-lib failed; see $log" >&2; exit 1; }
fi
exec "$venv/bin/python" "$here/mbrl_lib_mbpo_hopper.py" "$@"
