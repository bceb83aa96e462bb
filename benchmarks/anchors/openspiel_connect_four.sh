#!/usr/bin/env bash
# OpenSpiel 2.0.2's MCTS bot with random rollouts, playing Connect Four as the outside opponent of
# benchmarks/alphazero_connect_four.py: a JSON-lines server on stdin/stdout (see openspiel_connect_four.py).
# Builds a private venv outside the repo on first use (log: <venv>.install.log); the venv is
# $OPENSPIEL_VENV, by default /tmp/openspiel-venv.
# Usage (from the repo root):
#   benchmarks/anchors/openspiel_connect_four.sh --simulations 1000
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${OPENSPIEL_VENV:-/tmp/openspiel-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pyspiel" 2>/dev/null
then
  log=$venv.install.log
  echo "building the OpenSpiel venv at $venv (log: $log)" >&2
  { python3 -m venv "$venv" && "$venv/bin/pip" install open_spiel==2.0.2
  } >"$log" 2>&1 || { echo "installing open_spiel failed; see $log" >&2; exit 1; }
fi
exec "$venv/bin/python" "$here/openspiel_connect_four.py" "$@"
