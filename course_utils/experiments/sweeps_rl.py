"""Chapters 07 and 08 over seeds: tabular Q-learning's knobs on FrozenLake, DQN on CartPole,
REINFORCE with and without a learned baseline on CartPole."""

from __future__ import annotations

import numpy as np

from course_utils.experiments import sweep


# ---------------------------------------------------------------------------------------------
# Chapter 07
# ---------------------------------------------------------------------------------------------
@sweep("frozenlake_knobs", chapter="07",
       description="tabular Q-learning on slippery FrozenLake, 3,000 episodes: greedy success rate "
                   "for exploration eps in {0, 0.2} and learning rate alpha in {0.02, 0.1, 0.5, 1.0}",
       settings={"episodes": 3000, "eval_episodes": 1000}, smoke={"episodes": 300, "eval_episodes": 50},
       seeds=5)
def frozenlake_knobs(seed: int, episodes: int, eval_episodes: int) -> list[dict]:
    import gymnasium as gym

    from course_utils.rl import tabular
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    arms = [(0.1, 0.0), (0.1, 0.2), (0.02, 0.2), (0.5, 0.2), (1.0, 0.2)]
    rows = []
    for alpha, eps in arms:
        res = tabular.q_learning(env, episodes=episodes, alpha=alpha, gamma=0.99, epsilon=eps, seed=seed)
        greedy = tabular.evaluate_policy(env, tabular.greedy_policy(res.Q), episodes=eval_episodes,
                                         seed=100_000)
        rows.append({"arm": f"alpha={alpha:g}, eps={eps:g}", "alpha": alpha, "epsilon": eps,
                     "greedy_success": float(greedy), "successes_while_learning": int(sum(res.returns))})
    return rows


@sweep("dqn_seeds", chapter="07",
       description="DQN on CartPole-v1 with chapter 07's DQNConfig, one run per seed: greedy return "
                   "over 10 new episodes and the mean return of the last 20 training episodes",
       settings={"total_steps": 60000, "eval_episodes": 10}, smoke={"total_steps": 2000, "eval_episodes": 2},
       seeds=3)
def dqn_seeds(seed: int, total_steps: int, eval_episodes: int) -> list[dict]:
    import gymnasium as gym

    from course_utils.rl.dqn import DQNConfig, evaluate_q, train_dqn
    result = train_dqn(gym.make("CartPole-v1"), DQNConfig(total_steps=total_steps, seed=seed), progress=False)
    greedy = evaluate_q(gym.make("CartPole-v1"), result.q_net, episodes=eval_episodes)
    return [{"arm": "dqn", "greedy_return": float(np.mean(greedy)), "greedy_min": float(np.min(greedy)),
             "last20": float(np.mean(result.returns[-20:])), "episodes": len(result.returns)}]


# ---------------------------------------------------------------------------------------------
# Chapter 08
# ---------------------------------------------------------------------------------------------
def train_reinforce(use_baseline: bool, episodes: int = 300, batch: int = 4, lr: float = 1e-2,
                    seed: int = 0) -> list[float]:
    """Chapter 08's ``train_reinforce`` (the same code): the return of every training episode."""
    import gymnasium as gym
    import torch

    def returns_to_go(rewards, gamma=0.99):
        G, out = 0.0, torch.zeros_like(rewards)
        for t in reversed(range(len(rewards))):
            G = rewards[t] + gamma * G
            out[t] = G
        return out

    env = gym.make("CartPole-v1")
    torch.manual_seed(seed)
    pol = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))
    value = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(list(pol.parameters()) + list(value.parameters()), lr=lr)
    curve = []
    for it in range(episodes // batch):
        eps = []
        for k in range(batch):
            s, _ = env.reset(seed=seed * 100_000 + it * batch + k)
            logps, rewards, obs, done = [], [], [], False
            while not done:
                obs.append(torch.as_tensor(s, dtype=torch.float32))
                dist = torch.distributions.Categorical(logits=pol(obs[-1]))
                a = dist.sample()
                s, r, terminated, truncated, _ = env.step(int(a))
                logps.append(dist.log_prob(a)); rewards.append(r)
                done = terminated or truncated
            eps.append((torch.stack(logps), returns_to_go(torch.tensor(rewards)), torch.stack(obs)))
            curve.append(sum(rewards))
        loss = 0.0
        for logps, G, obs in eps:
            v = value(obs).squeeze(-1)
            adv = G - v.detach() if use_baseline else G
            loss = loss - (logps * adv).sum() / batch + (((v - G) ** 2).mean() / batch if use_baseline else 0.0)
        opt.zero_grad(); loss.backward(); opt.step()
    return curve


@sweep("reinforce_baseline", chapter="08",
       description="REINFORCE on CartPole-v1 with and without a learned value baseline (chapter 08's "
                   "train_reinforce): mean return of the last 20 episodes, best 20-episode mean, mean "
                   "return over all episodes",
       settings={"episodes": 300}, smoke={"episodes": 20}, seeds=5)
def reinforce_baseline(seed: int, episodes: int) -> list[dict]:
    rows = []
    for arm, use in (("no baseline", False), ("learned baseline", True)):
        curve = train_reinforce(use, episodes=episodes, seed=seed)
        smooth = np.convolve(curve, np.ones(20) / 20, mode="valid") if len(curve) >= 20 else np.array(curve)
        rows.append({"arm": arm, "final_return": float(np.mean(curve[-20:])), "best_smoothed": float(smooth.max()),
                     "mean_return": float(np.mean(curve)), "reached_500": int(smooth.max() >= 499.5)})
    return rows
