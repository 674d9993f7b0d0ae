"""Tabular reinforcement learning on small MDPs: Bellman equations and Q-learning.

An MDP is (S, A, P, R, gamma): states, actions, transition probabilities P(s' | s, a),
rewards and a discount. Gymnasium's toy-text environments (FrozenLake, CliffWalking)
expose their model as ``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]``;
:func:`mdp_arrays` turns it into arrays:

* ``P`` of shape (S, A, S): ``P[s, a, s2]`` = probability of moving to s2;
* ``R`` of shape (S, A): expected immediate reward of taking a in s;
* terminal transitions lead nowhere (their row of ``P`` sums to less than 1), so the
  value after the end of an episode is 0.

Bellman expectation equation for a policy pi (``pi`` of shape (S, A), rows sum to 1)::

    V(s) = sum_a pi(a|s) [ R(s, a) + gamma * sum_s2 P(s2|s, a) V(s2) ]

Bellman optimality equation::

    V*(s) = max_a [ R(s, a) + gamma * sum_s2 P(s2|s, a) V*(s2) ]

Q-learning (Watkins, 1989) learns Q* from sampled transitions without P::

    Q(s, a) <- Q(s, a) + alpha * ( r + gamma * max_a2 Q(s2, a2) * (1 - terminated) - Q(s, a) )
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def mdp_arrays(env) -> tuple[np.ndarray, np.ndarray]:
    """``(P, R)`` of a Gymnasium toy-text environment: shapes (S, A, S) and (S, A)."""
    model = env.unwrapped.P
    n_s, n_a = env.observation_space.n, env.action_space.n
    P = np.zeros((n_s, n_a, n_s))
    R = np.zeros((n_s, n_a))
    for s in range(n_s):
        for a in range(n_a):
            for prob, s2, r, terminated in model[s][a]:
                R[s, a] += prob * r
                if not terminated:  # after the end of an episode no more reward comes
                    P[s, a, s2] += prob
    return P, R


def q_from_v(P: np.ndarray, R: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """Q(s, a) = R(s, a) + gamma * sum_s2 P(s2|s, a) V(s2); shape (S, A)."""
    return R + gamma * P @ V


def policy_evaluation(P, R, pi, gamma: float, tol: float = 1e-10, max_iter: int = 100_000):
    """Iterate the Bellman expectation equation until V changes by less than ``tol``.

    Returns ``(V, sweeps)``; ``V`` has shape (S,).
    """
    V = np.zeros(P.shape[0])
    for sweep in range(1, max_iter + 1):
        new = (pi * q_from_v(P, R, V, gamma)).sum(axis=1)
        if np.max(np.abs(new - V)) < tol:
            return new, sweep
        V = new
    raise RuntimeError(f"policy evaluation did not converge in {max_iter} sweeps")


def policy_evaluation_exact(P, R, pi, gamma: float) -> np.ndarray:
    """Solve V = R_pi + gamma P_pi V as a linear system: V = (I - gamma P_pi)^-1 R_pi."""
    P_pi = np.einsum("sa,sat->st", pi, P)  # (S, S)
    R_pi = (pi * R).sum(axis=1)            # (S,)
    return np.linalg.solve(np.eye(P.shape[0]) - gamma * P_pi, R_pi)


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """The deterministic policy that takes argmax_a Q(s, a), as a one-hot array (S, A)."""
    pi = np.zeros_like(Q)
    pi[np.arange(Q.shape[0]), Q.argmax(axis=1)] = 1.0
    return pi


def value_iteration(P, R, gamma: float, tol: float = 1e-10, max_iter: int = 100_000):
    """Iterate the Bellman optimality equation. Returns ``(V, greedy policy, sweeps, deltas)``."""
    V = np.zeros(P.shape[0])
    deltas = []
    for sweep in range(1, max_iter + 1):
        new = q_from_v(P, R, V, gamma).max(axis=1)
        deltas.append(float(np.max(np.abs(new - V))))
        V = new
        if deltas[-1] < tol:
            return V, greedy_policy(q_from_v(P, R, V, gamma)), sweep, deltas
    raise RuntimeError(f"value iteration did not converge in {max_iter} sweeps")


def policy_iteration(P, R, gamma: float, max_iter: int = 1000):
    """Alternate exact evaluation and greedy improvement until the policy is stable.

    Returns ``(V, policy, iterations)``.
    """
    pi = np.full(R.shape, 1.0 / R.shape[1])
    for it in range(1, max_iter + 1):
        V = policy_evaluation_exact(P, R, pi, gamma)
        new = greedy_policy(q_from_v(P, R, V, gamma))
        if np.array_equal(new, pi):
            return V, pi, it
        pi = new
    raise RuntimeError(f"policy iteration did not converge in {max_iter} iterations")


#: Q-learning settings that reach the optimum on slippery FrozenLake 4x4 (pipeline, chapter 07).
FROZENLAKE_QLEARNING = {"episodes": 30_000, "alpha": 0.05, "gamma": 0.99, "epsilon": (1.0, 0.05)}


@dataclass
class QLearningResult:
    """Learned table ``Q`` (S, A) and the return of every training episode."""
    Q: np.ndarray
    returns: list[float] = field(default_factory=list)


def q_learning(env, episodes: int, alpha: float = 0.1, gamma: float = 0.99,
               epsilon: float | tuple[float, float] = 0.1, seed: int = 0,
               max_steps: int = 1000, progress: bool = False) -> QLearningResult:
    """Tabular Q-learning with an epsilon-greedy behaviour policy.

    ``epsilon`` is a constant or ``(start, end)`` for a linear decay over the episodes.
    Ties between equal Q-values are broken at random, so an all-zero table explores.
    """
    rng = np.random.default_rng(seed)
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    result = QLearningResult(Q)
    eps0, eps1 = (epsilon, epsilon) if np.isscalar(epsilon) else epsilon
    episodes_iter = range(episodes)
    if progress:
        from tqdm.auto import tqdm
        episodes_iter = tqdm(episodes_iter, desc="Q-learning", mininterval=0.5)
    for ep in episodes_iter:
        eps = eps0 + (eps1 - eps0) * ep / max(1, episodes - 1)
        s, _ = env.reset(seed=int(rng.integers(2**31)) if ep == 0 else None)
        total = 0.0
        for _ in range(max_steps):
            if rng.random() < eps:
                a = int(rng.integers(Q.shape[1]))
            else:
                best = np.flatnonzero(Q[s] == Q[s].max())
                a = int(rng.choice(best))
            s2, r, terminated, truncated, _ = env.step(a)
            target = r + gamma * Q[s2].max() * (not terminated)
            Q[s, a] += alpha * (target - Q[s, a])
            total += r
            s = s2
            if terminated or truncated:
                break
        result.returns.append(total)
    return result


def evaluate_policy(env, pi: np.ndarray, episodes: int = 1000, seed: int = 0,
                    max_steps: int = 1000) -> float:
    """Mean return of the deterministic policy ``pi`` (one-hot (S, A) or actions (S,))."""
    actions = pi.argmax(axis=1) if pi.ndim == 2 else pi
    total = 0.0
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        for _ in range(max_steps):
            s, r, terminated, truncated, _ = env.step(int(actions[s]))
            total += r
            if terminated or truncated:
                break
    return total / episodes
