#!/usr/bin/env bash
# Reference timing of mbrl-lib 0.2.0 (facebookresearch/mbrl-lib) in its PETS-tutorial configuration, on this
# machine: seconds of K planning calls (agent.act, after a warm-up) and of one ensemble training epoch, as one
# JSON line on stdout (see the docstring of mbrl_lib_pets_timing.py). benchmarks/pets_speed.py runs it.
# Builds a private venv outside the repo on first use (log: <venv>.install.log): torch 2.13.0 first (the local
# CPU wheel), mbrl 0.2.0 without its pins (its hydra-core 1.0.3 fails on Python 3.11), then omegaconf 2.3,
# hydra-core 1.3 and gymnasium 0.26.3. The venv is $MBRL_PETS_VENV, by default /tmp/mbrl-lib-pets-venv.
# Usage (from the repo root):
#   OMP_NUM_THREADS=1 benchmarks/anchors/mbrl_lib_pets_timing.sh --threads 1 --calls 10
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${MBRL_PETS_VENV:-/tmp/mbrl-lib-pets-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mbrl, omegaconf, gymnasium" 2>/dev/null
then
  log=$venv.install.log
  echo "building the mbrl-lib venv at $venv (log: $log)" >&2
  { python3 -m venv "$venv" \
    && "$venv/bin/pip" install torch==2.13.0 \
    && "$venv/bin/pip" install --no-deps mbrl==0.2.0 \
    && "$venv/bin/pip" install "omegaconf>=2.3" "hydra-core>=1.3" "gymnasium==0.26.3" "numpy<2" termcolor \
         tqdm matplotlib imageio
  } >"$log" 2>&1 || { echo "installing mbrl-lib failed; see $log" >&2; exit 1; }
fi
exec "$venv/bin/python" "$here/mbrl_lib_pets_timing.py" "$@"
