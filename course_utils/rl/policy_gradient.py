"""Policy-gradient agents for Gymnasium environments with discrete actions: PPO on CartPole.

The policy pi_theta(a | s) is a categorical distribution over actions from a small MLP; a
second head estimates V(s). Rollouts of ``n_steps`` steps from ``n_envs`` copies of the
environment give advantages by GAE; :func:`course_utils.rl.ppo.ppo_update` then takes several
epochs of clipped minibatch steps (the same core that tunes the language model later).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from course_utils.rl.ppo import gae, ppo_update


class ActorCritic(torch.nn.Module):
    """Separate two-layer tanh MLPs for the policy logits (B, n_actions) and the value (B,)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        def mlp(out: int, gain: float) -> torch.nn.Sequential:
            net = torch.nn.Sequential(torch.nn.Linear(obs_dim, hidden), torch.nn.Tanh(),
                                      torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                                      torch.nn.Linear(hidden, out))
            for layer in net:
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.orthogonal_(layer.weight, gain=np.sqrt(2))
                    torch.nn.init.zeros_(layer.bias)
            torch.nn.init.orthogonal_(net[-1].weight, gain=gain)
            return net
        self.actor, self.critic = mlp(n_actions, 0.01), mlp(1, 1.0)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.actor(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)


@dataclass
class PPOConfig:
    """Settings of :func:`train_ppo` (defaults: CartPole-v1 on a CPU)."""
    env_id: str = "CartPole-v1"
    total_steps: int = 150_000
    n_envs: int = 4
    n_steps: int = 128
    epochs: int = 4
    minibatch_size: int = 128
    lr: float = 2.5e-3
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    anneal_lr: bool = True
    seed: int = 0


@dataclass
class PPOResult:
    agent: ActorCritic
    returns: list[float] = field(default_factory=list)      # finished episodes, in order
    episode_ends: list[int] = field(default_factory=list)   # environment step of each
    updates: list[dict] = field(default_factory=list)       # ppo_update diagnostics per rollout


def make_vec_env(env_id: str, n_envs: int, seed: int) -> gym.vector.SyncVectorEnv:
    """``n_envs`` copies that reset themselves in the step an episode ends (SAME_STEP)."""
    env = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)],
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env.reset(seed=seed)
    return env


def train_ppo(config: PPOConfig = PPOConfig(), progress: bool = True) -> PPOResult:
    """PPO with GAE on a vector of Gymnasium environments; returns the agent and its curve."""
    from tqdm.auto import tqdm
    torch.manual_seed(config.seed)
    env = make_vec_env(config.env_id, config.n_envs, config.seed)
    obs_dim, n_actions = env.single_observation_space.shape[0], env.single_action_space.n
    agent = ActorCritic(obs_dim, n_actions)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr, eps=1e-5)
    result = PPOResult(agent)
    gen = torch.Generator().manual_seed(config.seed)
    obs = torch.as_tensor(env.reset(seed=config.seed)[0], dtype=torch.float32)
    ep_ret = np.zeros(config.n_envs)
    rollouts = config.total_steps // (config.n_envs * config.n_steps)
    T, N = config.n_steps, config.n_envs
    bar = tqdm(range(rollouts), desc="PPO", disable=not progress, mininterval=0.5)
    for it in bar:
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = config.lr * (1 - it / rollouts)
        buf = {k: torch.zeros(T, N) for k in ("logp", "values", "rewards", "dones", "actions")}
        buf_obs = torch.zeros(T, N, obs_dim)
        for t in range(T):
            with torch.no_grad():
                d = agent.dist(obs)
                a = d.sample()
                buf["logp"][t], buf["values"][t] = d.log_prob(a), agent.value(obs)
            nxt, r, term, trunc, _ = env.step(a.numpy())
            buf_obs[t], buf["actions"][t], buf["rewards"][t] = obs, a.float(), torch.as_tensor(r)
            done = np.logical_or(term, trunc)
            buf["dones"][t] = torch.as_tensor(done, dtype=torch.float32)
            ep_ret += r
            for i in np.flatnonzero(done):
                result.returns.append(float(ep_ret[i]))
                result.episode_ends.append((it * T + t + 1) * N)
                ep_ret[i] = 0.0
            obs = torch.as_tensor(nxt, dtype=torch.float32)
        with torch.no_grad():
            adv, ret = gae(buf["rewards"], buf["values"], buf["dones"], agent.value(obs),
                           config.gamma, config.lam)
        batch = {"obs": buf_obs.reshape(T * N, obs_dim), "actions": buf["actions"].reshape(-1).long(),
                 "old_logp": buf["logp"].reshape(-1), "advantages": adv.reshape(-1),
                 "returns": ret.reshape(-1)}

        def evaluate(mb):
            d = agent.dist(mb["obs"])
            return d.log_prob(mb["actions"]), agent.value(mb["obs"]), d.entropy()

        stats = ppo_update(batch, evaluate, optimizer, agent.parameters(), epochs=config.epochs,
                           minibatch_size=config.minibatch_size, clip=config.clip,
                           vf_coef=config.vf_coef, ent_coef=config.ent_coef,
                           max_grad_norm=config.max_grad_norm, generator=gen)
        result.updates.append(stats)
        if result.returns:
            bar.set_postfix(ret=f"{np.mean(result.returns[-20:]):.0f}", refresh=False)
    env.close()
    return result


@torch.no_grad()
def evaluate_agent(agent: ActorCritic, env_id: str = "CartPole-v1", episodes: int = 20,
                   seed: int = 10_000, greedy: bool = True) -> list[float]:
    """Returns of the agent over ``episodes`` fresh episodes (greedy: the most likely action)."""
    env = gym.make(env_id)
    returns = []
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            d = agent.dist(torch.as_tensor(s, dtype=torch.float32))
            a = int(d.probs.argmax()) if greedy else int(d.sample())
            s, r, terminated, truncated, _ = env.step(a)
            total += r
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns
