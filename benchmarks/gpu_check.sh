#!/usr/bin/env bash
# Checks for a CUDA machine, run in one go (device time is scarce):
#   bash benchmarks/gpu_check.sh tests hopper pets-cartpole
# tests: the test suite with device "auto" resolving to CUDA (TEST_SECONDS at most);
# hopper: MBPO on Hopper-v5 for HOPPER_MINUTES (benchmark (c) of issue 7);
# pets-cartpole: the 15-trial PETS curve on ContinuousCartPole, seeds 0-2 in parallel, at most PETS_SECONDS
# (benchmark (a) of issue 6); mbpo-ip: MBPO on InvertedPendulum-v5 for the seeds in MBPO_RUNS
# ("G:seed ...", all in parallel, at most MBPO_SECONDS each; benchmark (a) of issue 7; many launch-bound runs
# on one GPU ran slower than one CPU core each); mbpo-ip-cpu: the same on the host's CPU cores instead, one
# seed per core from 2 up (pinned, one thread, CPU device; seeds MBPO_CPU_SEEDS, at most MBPO_SECONDS each);
# sac-graph: SAC updates per second with the CUDA-graph update beside the eager one and stable-baselines3's on
# the same GPU (issue 7's (e)), and MBPO Hopper both ways (benchmarks/sac_cuda_graph.py, at most GRAPH_SECONDS).
# Wheels the machine lacks (gymnasium, mujoco, stable-baselines3) are carried in .whl
# and installed once per machine; results go to $OUT (default benchmarks/results/gpu). To fill .whl (ignored by git; name it in the device call's carry), on the CPU machine:
#   for p in gymnasium==1.4.0 Farama-Notifications==0.0.6 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 \
#       glfw==2.11.0 PyOpenGL==3.1.10 websockets stable-baselines3==2.9.2 cloudpickle; do .venv/bin/python -m pip download -q --no-deps \
#       --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $p; done
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site/stable_baselines3 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch, gymnasium, mujoco; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)" | tee -a "$OUT/machine.txt"

for job in "$@"; do
    case $job in
    tests)
        timeout "${TEST_SECONDS:-200}" python3 -m pytest -q -p no:cacheprovider -o addopts="-m 'not slow'" \
            ${TESTS:-tests} 2>&1 | tee "$OUT/pytest_cuda.log" | tail -15 ;;
    hopper)
        timeout $(( ${HOPPER_MINUTES:-4} * 60 + 120 )) python3 benchmarks/mbpo_hopper.py \
            --minutes "${HOPPER_MINUTES:-4}" --device cuda --checkpoint /tmp/mbpo_hopper_gpu.pt --name mbpo_hopper_h200
        cp benchmarks/results/mbpo_hopper_h200.* "$OUT"/ ;;
    pets-cartpole)
        for seed in 0 1 2; do
            timeout "${PETS_SECONDS:-300}" python3 benchmarks/pets_cartpole.py --seeds $seed --trials 15 \
                --device cuda --name pets_cartpole_gpu_s$seed > "$OUT/pets_s$seed.log" 2>&1 &
        done
        wait
        tail -n 3 "$OUT"/pets_s*.log
        python3 benchmarks/pets_cartpole.py --merge pets_cartpole_gpu_s0 pets_cartpole_gpu_s1 pets_cartpole_gpu_s2 \
            --name pets_cartpole_h200
        cp benchmarks/results/pets_cartpole_h200.* "$OUT"/ ;;
    mbpo-ip)
        for run in ${MBPO_RUNS:-10:3 10:4 10:5}; do
            g=${run%%:*} seed=${run##*:}
            timeout "${MBPO_SECONDS:-420}" python3 benchmarks/mbpo_vs_sac.py --env InvertedPendulum-v5 \
                --threshold 950 --mbpo-steps 3000 --mbpo-random-steps 250 --set updates_per_step=$g --set device=cuda \
                --only mbpo --seeds $seed --name mbpo_ip_gpu_g${g}_s$seed > "/tmp/mbpo_ip_g${g}_s$seed.log" 2>&1 &
        done
        wait
        for log in /tmp/mbpo_ip_*.log; do echo "== $log"; cat "$log"; done > "$OUT/mbpo_ip.log"
        grep -h "eval return" /tmp/mbpo_ip_*.log | tail -n 20 ;;
    mbpo-ip-cpu)
        core=2
        for seed in ${MBPO_CPU_SEEDS:-$(seq 8 21)}; do
            CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 taskset -c $core timeout "${MBPO_SECONDS:-500}" python3 \
                benchmarks/mbpo_vs_sac.py --only mbpo --seeds $seed --mbpo-steps 3000 --set device=cpu \
                --name h200cpu_s$seed > "/tmp/mbpo_ip_cpu_s$seed.log" 2>&1 &
            core=$(( core + 1 ))
        done
        wait
        for log in /tmp/mbpo_ip_cpu_s*.log; do echo "== $log"; cat "$log"; done > "$OUT/mbpo_ip_cpu.log"
        tar czf "$OUT/mbpo_ip_cpu.tgz" -C benchmarks/results $(cd benchmarks/results && ls h200cpu_s*.json)
        grep -h "eval return" /tmp/mbpo_ip_cpu_s*.log | tail -n 20 ;;
    sac-graph)
        (cd benchmarks && timeout "${GRAPH_SECONDS:-240}" python3 sac_cuda_graph.py --updates 500 --rounds 2 \
            --mbpo-steps 250)
        cp benchmarks/results/sac_cuda_graph.* "$OUT"/ ;;
    *) echo "unknown job $job (tests, hopper, pets-cartpole, mbpo-ip, mbpo-ip-cpu, sac-graph)"; exit 2 ;;
    esac
done
ls "$OUT"
