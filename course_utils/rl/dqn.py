"""Deep Q-networks (Mnih et al., 2015) for Gymnasium environments with discrete actions.

Q-learning with a neural network Q_theta(s, .) in place of the table, made stable by two
devices: a **replay buffer** (train on random past transitions, not the last few, which are
strongly correlated) and a **target network** Q_target (a copy of Q_theta refreshed every
``target_every`` steps) in the bootstrapped target::

    y = r + gamma * (1 - terminated) * max_a2 Q_target(s2, a2)
    loss = Huber( Q_theta(s, a) - y )          (smooth L1: quadratic near 0, linear beyond 1)

Shapes: observations (B, obs_dim), actions (B,), rewards (B,), terminated (B,).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s2, terminated) stored as numpy arrays."""

    def __init__(self, capacity: int, obs_dim: int, seed: int = 0):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.rng = np.random.default_rng(seed)

    def add(self, s, a: int, r: float, s2, terminated: bool) -> None:
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = s, a, r
        self.next_obs[i], self.terminated[i] = s2, float(terminated)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        idx = self.rng.integers(0, self.size, batch_size)
        return {"obs": torch.from_numpy(self.obs[idx]), "actions": torch.from_numpy(self.actions[idx]),
                "rewards": torch.from_numpy(self.rewards[idx]), "next_obs": torch.from_numpy(self.next_obs[idx]),
                "terminated": torch.from_numpy(self.terminated[idx])}


def q_network(obs_dim: int, n_actions: int, hidden: int = 128) -> torch.nn.Module:
    """A two-hidden-layer MLP mapping an observation to one Q-value per action."""
    return torch.nn.Sequential(torch.nn.Linear(obs_dim, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, n_actions))


@torch.no_grad()
def dqn_target(target_net: torch.nn.Module, rewards: torch.Tensor, next_obs: torch.Tensor,
               terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * max_a2 Q_target(s2, a2); shape (B,)."""
    return rewards + gamma * (1.0 - terminated) * target_net(next_obs).max(dim=1).values


def dqn_loss(q_net: torch.nn.Module, target_net: torch.nn.Module, batch: dict[str, torch.Tensor],
             gamma: float) -> torch.Tensor:
    """Huber loss between Q_theta(s, a) and the target y (formula in the module docstring)."""
    q = q_net(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
    y = dqn_target(target_net, batch["rewards"], batch["next_obs"], batch["terminated"], gamma)
    return F.smooth_l1_loss(q, y)


@dataclass
class DQNConfig:
    """Settings of :func:`train_dqn` (defaults tuned for CartPole-v1 on a CPU)."""
    total_steps: int = 60_000
    gamma: float = 0.99
    lr: float = 1e-3
    buffer_size: int = 50_000
    batch_size: int = 64
    learning_starts: int = 1_000
    train_every: int = 1
    target_every: int = 500
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.2     # share of total_steps over which epsilon decays linearly
    hidden: int = 128
    anneal_lr: bool = True        # decay the learning rate linearly to 0: a calmer end of training
    seed: int = 0


@dataclass
class DQNResult:
    q_net: torch.nn.Module
    returns: list[float] = field(default_factory=list)   # one per finished episode
    episode_ends: list[int] = field(default_factory=list)  # environment step of each
    losses: list[float] = field(default_factory=list)


def train_dqn(env, config: DQNConfig = DQNConfig(), progress: bool = True) -> DQNResult:
    """Train a DQN on a Gymnasium environment with a Box observation and Discrete actions."""
    from tqdm.auto import tqdm
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    q_net = q_network(obs_dim, n_actions, config.hidden)
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.lr)
    buffer = ReplayBuffer(config.buffer_size, obs_dim, config.seed)
    result = DQNResult(q_net)
    s, _ = env.reset(seed=config.seed)
    episode_return = 0.0
    bar = tqdm(range(config.total_steps), desc="DQN", disable=not progress, mininterval=0.5)
    for step in bar:
        frac = min(1.0, step / (config.eps_fraction * config.total_steps))
        eps = config.eps_start + frac * (config.eps_end - config.eps_start)
        if rng.random() < eps:
            a = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                a = int(q_net(torch.as_tensor(s, dtype=torch.float32)).argmax())
        s2, r, terminated, truncated, _ = env.step(a)
        buffer.add(s, a, r, s2, terminated)
        episode_return += r
        s = s2
        if terminated or truncated:
            result.returns.append(episode_return)
            result.episode_ends.append(step + 1)
            bar.set_postfix(ret=f"{np.mean(result.returns[-20:]):.0f}", refresh=False)
            episode_return = 0.0
            s, _ = env.reset()
        if step >= config.learning_starts and step % config.train_every == 0:
            if config.anneal_lr:
                optimizer.param_groups[0]["lr"] = config.lr * (1 - step / config.total_steps)
            loss = dqn_loss(q_net, target_net, buffer.sample(config.batch_size), config.gamma)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(q_net.parameters(), 10.0)
            optimizer.step()
            result.losses.append(loss.item())
        if step % config.target_every == 0:
            target_net.load_state_dict(q_net.state_dict())
    return result


@torch.no_grad()
def evaluate_q(env, q_net: torch.nn.Module, episodes: int = 20, seed: int = 10_000) -> list[float]:
    """Returns of the greedy policy argmax_a Q(s, a) over ``episodes`` episodes."""
    returns = []
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(q_net(torch.as_tensor(s, dtype=torch.float32)).argmax()))
            total += r
            done = terminated or truncated
        returns.append(total)
    return returns
