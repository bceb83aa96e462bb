"""Helpers the env tests share."""


def run(env, steps: int) -> list[tuple]:
    """(action, observation, reward, done) of `steps` random steps, starting a new episode after each end."""
    trajectory = []
    for _ in range(steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        trajectory.append((action, obs, reward, terminated or truncated))
        if terminated or truncated:
            env.reset()
    return trajectory
