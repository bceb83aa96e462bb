"""Audit a saved MBPO agent along its own real episodes: is it the model or the critic that is wrong?

At each step of fresh episodes of the current policy (on a separate env), the critics' Q beside the return
that actually followed and the one-step Bellman target the critics train towards; and the model's one-step
prediction from the same (s, a), sampled through random elites, beside what the env did: next-state error in
units of each dimension's standard deviation in the real buffer, reward, and the probability that the
imagined step terminates against the real termination.

    python benchmarks/mbpo_audit.py runs/hopper_slowactor.pt --name mbpo_audit_slowactor [--deterministic]
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch
from common import RESULTS, results_name, write_results

import modelrl
from modelrl.agents.mbpo import MBPO
from modelrl.agents.sac import soft_returns
from modelrl.envs import make_env
from modelrl.errors import ModelRLError
from modelrl.models.imagination import step_random_elites

SAMPLES = 100  # imagined next states per real step
NEXT_ACTIONS = 20  # sampled next actions per Bellman target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--name", type=results_name, default="mbpo_audit")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--deterministic", action="store_true",
                        help="the evaluation policy (tanh of the mean)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        agent = modelrl.load(args.checkpoint)
    except ModelRLError as error:
        parser.exit(2, f"error: {error}\n")
    if not isinstance(agent, MBPO):
        parser.exit(2, f"error: {args.checkpoint} holds a {agent.agent_id} agent; the audit needs mbpo\n")
    episodes = audit(agent, args.episodes, args.seed, args.deterministic)
    record = {"checkpoint": args.checkpoint, "env": agent.env_id, "env_steps": agent.env_steps,
              "deterministic": args.deterministic, "alpha": agent.learner.log_alpha.detach().exp().item(),
              "summary": [summarise(episode) for episode in episodes], "first_episode": episodes[0]}
    for line in record["summary"]:
        print(line)
    write_results(args.name, record)
    plot(episodes[0], record, args.name)


@torch.no_grad()
def audit(agent: MBPO, episodes: int, seed: int, deterministic: bool) -> list[dict]:
    learner, gamma = agent.learner, agent.config.gamma
    alpha = float(learner.log_alpha.exp())
    generator = torch.Generator(agent.device).manual_seed(seed)
    real_scale = torch.as_tensor(agent.buffer.all()["obs"], device=agent.device).std(0).clamp_min(1e-6)
    env = make_env(agent.env_id, **agent.env_kwargs)
    results = []
    for episode in range(episodes):
        run = agent.policy_episode(env, seed + episode, generator, deterministic=deterministic)
        obs, action, steps = run["obs"], run["action"], len(run["reward"])
        next_obs = torch.cat([obs[1:], torch.as_tensor(run["final_obs"], device=agent.device)[None]])
        terminated = torch.zeros(steps, dtype=torch.bool, device=agent.device)
        terminated[-1] = run["terminated"]
        q = learner.critic(obs, action).min(0).values
        # The Bellman target at each step as in training, averaged over sampled next actions.
        reward = torch.as_tensor(run["reward"], dtype=torch.float32, device=agent.device)
        target = learner.bellman_target(reward.repeat(NEXT_ACTIONS), next_obs.repeat(NEXT_ACTIONS, 1),
                                        terminated.repeat(NEXT_ACTIONS), alpha, generator)
        target = target.view(NEXT_ACTIONS, steps).mean(0)
        # The model's one-step predictions from the same (s, a).
        imagined_obs, imagined_reward, imagined_end = step_random_elites(
            agent.model, obs.repeat(SAMPLES, 1), action.repeat(SAMPLES, 1), generator)
        if agent.termination_fn is not None:
            imagined_end = agent.termination_fn(obs.repeat(SAMPLES, 1), action.repeat(SAMPLES, 1),
                                                imagined_obs)
        imagined_obs = imagined_obs.view(SAMPLES, steps, -1)
        state_error = ((imagined_obs.mean(0) - next_obs) / real_scale).abs()
        returns = soft_returns(run["reward"], run["log_prob"], 0.0 if deterministic else alpha, gamma)
        results.append({
            "steps": steps, "terminated": run["terminated"], "return": float(run["reward"].sum()),
            "q": q.tolist(), "bellman_target": target.tolist(), "return_that_followed": returns.tolist(),
            "reward": run["reward"].tolist(),
            "imagined_reward": imagined_reward.view(SAMPLES, steps).mean(0).tolist(),
            "imagined_termination_probability": imagined_end.float().view(SAMPLES, steps).mean(0).tolist(),
            "next_state_error_std_units": state_error.mean(-1).tolist(),
            "worst_dimension_error_std_units": state_error.max(-1).values.tolist()})
    env.close()
    return results


def summarise(episode: dict) -> dict:
    q, target = np.asarray(episode["q"]), np.asarray(episode["bellman_target"])
    followed = np.asarray(episode["return_that_followed"])
    ending = episode["imagined_termination_probability"][-1]
    return {"steps": episode["steps"], "return": round(episode["return"], 1),
            "terminated": episode["terminated"],
            "q_first_step": round(float(q[0]), 1), "return_followed_first_step": round(float(followed[0]), 1),
            "mean_q_minus_return": round(float((q - followed).mean()), 1),
            "mean_abs_bellman_residual": round(float(np.abs(q - target).mean()), 2),
            "mean_next_state_error_std_units": round(
                float(np.mean(episode["next_state_error_std_units"])), 4),
            "mean_reward_error": round(float(np.mean(np.abs(np.subtract(episode["imagined_reward"],
                                                                        episode["reward"])))), 4),
            "imagined_termination_probability_at_last_step": round(float(ending), 3)}


def plot(episode: dict, record: dict, name: str) -> None:
    fig, (values, model) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    steps = np.arange(episode["steps"])
    values.plot(steps, episode["q"], label="critics' Q(s, a)")
    values.plot(steps, episode["bellman_target"], "--", label="its Bellman target")
    values.plot(steps, episode["return_that_followed"], label="return that followed" + (
        "" if record["deterministic"] else " (soft)"))
    values.set(ylabel="value",
               title=f"MBPO audit, {record['env']} at {record['env_steps']} steps: one episode, "
               + ("deterministic" if record["deterministic"] else "stochastic") + " policy")
    values.legend(fontsize="small")
    model.plot(steps, episode["next_state_error_std_units"],
               label="next-state error (mean over dims, std units)")
    model.plot(steps, episode["imagined_termination_probability"], label="imagined P(termination)")
    if episode["terminated"]:
        model.axvline(steps[-1], color="grey", linestyle=":", label="real termination")
    model.set(xlabel="step of the episode", ylabel="model's one-step prediction")
    model.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
