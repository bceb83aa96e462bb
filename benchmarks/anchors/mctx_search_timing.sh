#!/usr/bin/env bash
# Reference timing of DeepMind's mctx 0.0.71 (JAX) MuZero search on this machine's CPU: seconds of one jitted
# `mctx.muzero_policy` call over a batch of roots with a small random MuZero-shaped network, and simulations
# per second, as one JSON line on stdout (see the docstring of mctx_search_timing.py).
# benchmarks/mcts_speed.py runs it.
# Builds a private venv outside the repo on first use (log: <venv>.install.log): mctx 0.0.71 with the JAX
# (CPU) it resolved to when this was written, pinned with its dependencies so the anchor stays the same.
# The venv is $MCTX_VENV, by default /tmp/mctx-venv.
# The CPU only, one compute thread: JAX_PLATFORMS=cpu, XLA_FLAGS gets --xla_cpu_multi_thread_eigen=false
# (anything already in XLA_FLAGS is kept after it), and the .py sizes XLA's CPU thread pool to --threads
# (default 1), which the flag alone does not do (see its docstring). The JSON line reports both.
# Usage (from the repo root):
#   benchmarks/anchors/mctx_search_timing.sh --batch 64 --simulations 50 --searches 20
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${MCTX_VENV:-/tmp/mctx-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mctx, jax" 2>/dev/null
then
  log=$venv.install.log
  echo "building the mctx venv at $venv (log: $log)" >&2
  { python3 -m venv "$venv" \
    && "$venv/bin/pip" install mctx==0.0.71 jax==0.10.2 jaxlib==0.10.2 chex==0.1.92 numpy==2.4.6 \
         ml_dtypes==0.7.0 scipy==1.17.1 opt_einsum==3.4.0 absl-py==2.5.1 toolz==1.2.0 \
         typing_extensions==4.16.0
  } >"$log" 2>&1 || { echo "installing mctx failed; see $log" >&2; exit 1; }
fi
export JAX_PLATFORMS=cpu
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false${XLA_FLAGS:+ $XLA_FLAGS}"
exec "$venv/bin/python" "$here/mctx_search_timing.py" "$@"
