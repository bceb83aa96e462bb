"""Anchor: simulations per second of DeepMind's mctx 0.0.71 MuZero search (JAX, jitted, CPU), small network.

A batch of --batch roots searched together by `mctx.muzero_policy`, --simulations simulations each, with a
MuZero-shaped network of random weights (seeded; float32), the one benchmarks/mcts_speed.py gives modelrl's
batched MCTS:
- representation: an observation of 16 floats -> Linear(16, 64), ReLU, Linear(64, 32): the latent z (32);
- dynamics (mctx's `recurrent_fn`): x = z and a one-hot of the action (9), concatenated (41);
  h = ReLU(Linear(41, 64)(x)); the next z = Linear(64, 32)(h); the reward = Linear(64, 1)(h);
- prediction, of the root's z and of every new z: h = ReLU(Linear(32, 64)(z)); prior logits =
  Linear(64, 9)(h); value = Linear(64, 1)(h).
Weights and biases are drawn as PyTorch's `nn.Linear` draws them (uniform within 1/sqrt(fan_in)), from a
fixed key; the observations are standard normal, from the same seed.

The search is mctx's MuZero search with its defaults: pUCT with c1 1.25 and c2 19652, Q-values normalised
per node by the min and max over the node's value and its visited children's Q
(`qtransform_by_parent_and_siblings`), Dirichlet noise at the roots (alpha 0.3, fraction 0.25), no depth
limit, simulations run by `jax.lax.fori_loop`, the action sampled from the root's visit counts
(temperature 1). Single-agent: every step is discounted by 0.997 (no sign flip). All 9 actions are legal
(no `invalid_actions`). As in modelrl's search, each call also computes the roots (representation and
prediction of the observations).

What it times: one function, jitted whole (`jax.jit`): observations and a key in, the policy's output out.
The first call, which compiles, is timed apart (compile_s); then --searches timed calls, each with a fresh
key (split before the clock starts) and ended by `block_until_ready` on the whole output. Prints one JSON
line: the seconds of each call, their median, batch x simulations / median as simulations per second.

Threads: the JAX CPU backend runs a compiled call on its intra-op thread pool ("tf_XLAEigen" threads), sized
when the backend starts to the cores the process may use; XLA's flags do not shrink it. On this 2-core
machine, with the default pool of two, both threads ran parts of one search at the same time, with or
without --xla_cpu_multi_thread_eigen=false (which mctx_search_timing.sh passes in XLA_FLAGS, with
JAX_PLATFORMS=cpu). So with --threads N this script restricts the process to N of its cores
(`os.sched_setaffinity`) while the backend starts, which sizes the pool to N threads, and then gives the
process its cores back, so that the scheduler may move that thread as it moves modelrl's one torch thread.
With --threads 1 the threads take turns: sampling the threads' states every 2 ms through 600 searches, two
were runnable at once in 8% of the samples (hand-overs between the calling thread and the pool's), against
60% with the default pool. --threads 0 leaves JAX's defaults. The JSON line reports the flags and the
pool's threads.

  benchmarks/anchors/mctx_search_timing.sh --batch 64 --simulations 50 --searches 20 --threads 1
"""

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import mctx

OBS, HIDDEN, LATENT, ACTIONS = 16, 64, 32, 9
DISCOUNT = 0.997
LAYERS = {  # name: (inputs, outputs)
    "representation_hidden": (OBS, HIDDEN), "representation_out": (HIDDEN, LATENT),
    "dynamics_hidden": (LATENT + ACTIONS, HIDDEN), "dynamics_latent": (HIDDEN, LATENT),
    "dynamics_reward": (HIDDEN, 1),
    "prediction_hidden": (LATENT, HIDDEN), "prediction_logits": (HIDDEN, ACTIONS),
    "prediction_value": (HIDDEN, 1),
}


def init_params(key: jax.Array) -> dict:
    """Every layer's weight (inputs, outputs) and bias, uniform within 1/sqrt(inputs), float32."""
    params = {}
    for name, (inputs, outputs) in LAYERS.items():
        key, w_key, b_key = jax.random.split(key, 3)
        bound = 1.0 / inputs ** 0.5
        params[name] = (
            jax.random.uniform(w_key, (inputs, outputs), jnp.float32, -bound, bound),
            jax.random.uniform(b_key, (outputs,), jnp.float32, -bound, bound),
        )
    return params


def linear(layer: tuple, x: jax.Array) -> jax.Array:
    weight, bias = layer
    return x @ weight + bias


def predict(params: dict, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Prior logits (B, 9) and value (B,) of latents z (B, 32)."""
    h = jax.nn.relu(linear(params["prediction_hidden"], z))
    return linear(params["prediction_logits"], h), linear(params["prediction_value"], h)[..., 0]


def root_fn(params: dict, obs: jax.Array) -> mctx.RootFnOutput:
    z = linear(params["representation_out"], jax.nn.relu(linear(params["representation_hidden"], obs)))
    logits, value = predict(params, z)
    return mctx.RootFnOutput(prior_logits=logits, value=value, embedding=z)


def recurrent_fn(params: dict, rng_key: jax.Array, action: jax.Array, z: jax.Array):
    """mctx's model step: (reward, discount, prior logits, value) of the new latent, and the latent."""
    del rng_key  # the model is deterministic
    x = jnp.concatenate([z, jax.nn.one_hot(action, ACTIONS, dtype=z.dtype)], axis=-1)
    h = jax.nn.relu(linear(params["dynamics_hidden"], x))
    next_z = linear(params["dynamics_latent"], h)
    reward = linear(params["dynamics_reward"], h)[..., 0]
    logits, value = predict(params, next_z)
    output = mctx.RecurrentFnOutput(reward=reward, discount=jnp.full_like(reward, DISCOUNT),
                                    prior_logits=logits, value=value)
    return output, next_z


def make_policy(simulations: int):
    """The jitted search: (params, key, observations) -> mctx's PolicyOutput."""
    def policy(params: dict, rng_key: jax.Array, obs: jax.Array) -> mctx.PolicyOutput:
        return mctx.muzero_policy(params, rng_key, root_fn(params, obs), recurrent_fn,
                                  num_simulations=simulations)
    return jax.jit(policy)


def pool_threads() -> int | None:
    """How many of this process's threads are XLA's intra-op pool ("tf_XLAEigen"); None without /proc."""
    if not os.path.isdir("/proc/self/task"):
        return None
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return sum(name.startswith("tf_XLAEigen") for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="roots searched together")
    parser.add_argument("--simulations", type=int, default=50, help="simulations per root")
    parser.add_argument("--searches", type=int, default=20, help="timed searches, after the compiling one")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of XLA's CPU pool (0: JAX's default, one per core)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads > 0:
        allowed = os.sched_getaffinity(0)
        if args.threads > len(allowed):
            parser.error(f"--threads {args.threads}: the process may use {len(allowed)} cores")
        os.sched_setaffinity(0, sorted(allowed)[:args.threads])
        jax.devices()  # starts the CPU backend, whose pool takes the size of the cores allowed now
        os.sched_setaffinity(0, allowed)

    params_key, obs_key, search_key = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    params = init_params(params_key)
    obs = jax.random.normal(obs_key, (args.batch, OBS), jnp.float32)
    policy = make_policy(args.simulations)
    keys = jax.random.split(search_key, args.searches + 1)
    jax.block_until_ready(keys)

    started = time.perf_counter()
    out = jax.block_until_ready(policy(params, keys[0], obs))
    compile_s = time.perf_counter() - started
    seconds = []
    for key in keys[1:]:
        started = time.perf_counter()
        out = jax.block_until_ready(policy(params, key, obs))
        seconds.append(time.perf_counter() - started)
    visits = out.search_tree.summary().visit_counts
    median = statistics.median(seconds)
    print(json.dumps({
        "anchor": f"mctx {mctx.__version__}", "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "python": platform.python_version(), "backend": jax.default_backend(),
        "batch": args.batch, "simulations": args.simulations, "searches": args.searches, "seed": args.seed,
        "seconds": seconds, "seconds_per_search": median,
        "simulations_per_second": args.batch * args.simulations / median, "compile_s": compile_s,
        "threads": args.threads, "xla_pool_threads": pool_threads(),
        "xla_flags": os.environ.get("XLA_FLAGS"), "jax_platforms": os.environ.get("JAX_PLATFORMS"),
        "root_visits_per_search": float(visits.sum(-1).mean()),
        "network": {"obs": OBS, "hidden": HIDDEN, "latent": LATENT, "actions": ACTIONS,
                    "layers": {name: list(shape) for name, shape in LAYERS.items()},
                    "parameters": sum(i * o + o for i, o in LAYERS.values()), "dtype": "float32"},
        "search": {"policy": "muzero_policy", "discount": DISCOUNT, "pb_c_init": 1.25, "pb_c_base": 19652,
                   "dirichlet_alpha": 0.3, "dirichlet_fraction": 0.25,
                   "qtransform": "qtransform_by_parent_and_siblings", "invalid_actions": None},
    }))


if __name__ == "__main__":
    main()
