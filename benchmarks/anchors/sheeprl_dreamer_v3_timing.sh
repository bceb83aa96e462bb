#!/usr/bin/env bash
# Reference timing of sheeprl 0.8.4's DreamerV3 (Eclectic-Sheep/sheeprl) at the widths of modelrl's size1m, on
# this machine: seconds of its gradient update (world model, actor and critic) on a batch of 16 x 64 steps of
# a 5-float observation and one continuous action, as one JSON line on stdout (see the docstring of
# sheeprl_dreamer_v3_timing.py).
# Builds a private venv outside the repo on first use (log: <venv>.install.log): torch 2.13.0 first (the local
# CPU wheel), then sheeprl 0.8.4 with its own dependencies, whose pins (torch>=2.6, lightning>=2.6.1,
# hydra-core 1.3, gymnasium[classic-control] 1.x, numpy<3; Python 3.10-3.13) keep that torch; the versions the
# resolver chose for them when this was written are pinned, so the anchor stays the same. The venv is
# $SHEEPRL_VENV, by default /tmp/sheeprl-venv.
# Usage (from the repo root):
#   OMP_NUM_THREADS=1 benchmarks/anchors/sheeprl_dreamer_v3_timing.sh --threads 1 --updates 10
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${SHEEPRL_VENV:-/tmp/sheeprl-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sheeprl, lightning, hydra" 2>/dev/null
then
  log=$venv.install.log
  echo "building the sheeprl venv at $venv (log: $log)" >&2
  { python3 -m venv "$venv" \
    && "$venv/bin/pip" install torch==2.13.0 \
    && "$venv/bin/pip" install sheeprl==0.8.4 torch==2.13.0 lightning==2.6.6 hydra-core==1.3.8 \
         omegaconf==2.3.1 gymnasium==1.4.0 numpy==2.4.6 torchmetrics==1.9.0
  } >"$log" 2>&1 || { echo "installing sheeprl failed; see $log" >&2; exit 1; }
fi
exec "$venv/bin/python" "$here/sheeprl_dreamer_v3_timing.py" "$@"
