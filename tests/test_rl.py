"""The RL core: Bellman solvers, Q-learning, GAE, the PPO loss, and short seeded runs."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from course_utils.rl import tabular
from course_utils.rl.dqn import DQNConfig, dqn_target, train_dqn
from course_utils.rl.policy_gradient import PPOConfig, train_ppo
from course_utils.rl.ppo import gae, ppo_loss


@pytest.fixture(scope="module")
def frozenlake():
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    return env, *tabular.mdp_arrays(env)


def test_mdp_arrays_are_a_transition_model(frozenlake):
    env, P, R = frozenlake
    assert P.shape == (16, 4, 16) and R.shape == (16, 4)
    assert np.all(P.sum(axis=2) <= 1 + 1e-12)
    assert R.max() == pytest.approx(1 / 3)  # one of three slips reaches the goal


def test_iterative_policy_evaluation_matches_the_linear_solve(frozenlake):
    _, P, R = frozenlake
    pi = np.full((16, 4), 0.25)
    V_iter, sweeps = tabular.policy_evaluation(P, R, pi, gamma=0.95)
    V_exact = tabular.policy_evaluation_exact(P, R, pi, gamma=0.95)
    assert sweeps > 1 and np.max(np.abs(V_iter - V_exact)) < 1e-8


def test_value_iteration_agrees_with_the_linear_solve_and_policy_iteration(frozenlake):
    _, P, R = frozenlake
    V, pi, _, deltas = tabular.value_iteration(P, R, gamma=0.95)
    assert np.max(np.abs(V - tabular.policy_evaluation_exact(P, R, pi, 0.95))) < 1e-6
    V2, pi2, _ = tabular.policy_iteration(P, R, gamma=0.95)
    assert np.max(np.abs(V - V2)) < 1e-6
    assert all(b <= a + 1e-12 for a, b in zip(deltas, deltas[1:]))  # a contraction


def test_q_learning_finds_the_optimal_policy_on_a_deterministic_mdp():
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=False)
    P, R = tabular.mdp_arrays(env)
    V, pi, _, _ = tabular.value_iteration(P, R, gamma=0.9)
    res = tabular.q_learning(env, episodes=2000, alpha=0.5, gamma=0.9, epsilon=(1.0, 0.1), seed=0)
    assert tabular.evaluate_policy(env, tabular.greedy_policy(res.Q), episodes=5) == 1.0
    assert res.Q[0].max() == pytest.approx(V[0], abs=1e-3)


def test_gae_equals_a_brute_force_sum_of_discounted_td_errors():
    g = torch.Generator().manual_seed(0)
    T, N, gamma, lam = 7, 3, 0.9, 0.8
    r, v = torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    d = (torch.rand(T, N, generator=g) < 0.3).float()
    last = torch.randn(N, generator=g)
    adv, ret = gae(r, v, d, last, gamma, lam)
    v_next = torch.cat([v[1:], last[None]])
    delta = r + gamma * v_next * (1 - d) - v
    for n in range(N):
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                total += weight * delta[k, n].item()
                if d[k, n]:
                    break
                weight *= gamma * lam
            assert adv[t, n].item() == pytest.approx(total, abs=1e-5)
    assert torch.allclose(ret, adv + v)


def test_ppo_loss_equals_a_hand_computation():
    new = torch.tensor([0.0, -1.0, -0.2, -3.0])
    old = torch.tensor([-0.5, -1.0, -0.1, -2.0])
    adv = torch.tensor([1.0, -1.0, 2.0, -0.5])
    values, returns = torch.tensor([0.5, 0.0, 1.0, 2.0]), torch.tensor([1.0, 0.0, 0.0, 2.0])
    out = ppo_loss(new, old, adv, values, returns, entropy=torch.tensor([0.5, 0.5, 0.5, 0.5]),
                   clip=0.2, vf_coef=0.5, ent_coef=0.1)
    terms = []
    for n, o, a in zip(new.tolist(), old.tolist(), adv.tolist()):
        rho = np.exp(n - o)
        terms.append(min(rho * a, np.clip(rho, 0.8, 1.2) * a))
    policy = -np.mean(terms)
    value = 0.5 * np.mean([(0.5 - 1) ** 2, 0, 1, 0])
    assert out.policy.item() == pytest.approx(policy, abs=1e-6)
    assert out.value.item() == pytest.approx(value, abs=1e-6)
    assert out.total.item() == pytest.approx(policy + 0.5 * value - 0.1 * 0.5, abs=1e-6)
    ratios = np.exp((new - old).numpy())
    assert out.clip_fraction == pytest.approx(np.mean(np.abs(ratios - 1) > 0.2))
    assert out.approx_kl == pytest.approx(np.mean((ratios - 1) - np.log(ratios)), abs=1e-6)
    # with a mask, only the unmasked positions count
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])
    masked = ppo_loss(new, old, adv, values, returns, clip=0.2, mask=mask)
    assert masked.policy.item() == pytest.approx(-np.mean(terms[:2]), abs=1e-6)


def test_dqn_target_does_not_bootstrap_from_terminal_states():
    net = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    y = dqn_target(net, torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 2.0], [1.0, 2.0]]),
                   torch.tensor([0.0, 1.0]), gamma=0.5)
    assert y.tolist() == [1.0 + 0.5 * 3.0, 1.0]


def test_short_seeded_cartpole_runs_improve_their_return():
    ppo = train_ppo(PPOConfig(total_steps=16_384, seed=0), progress=False)
    assert np.mean(ppo.returns[-10:]) > 2 * np.mean(ppo.returns[:10]), ppo.returns
    dqn = train_dqn(gym.make("CartPole-v1"), DQNConfig(total_steps=8_000, learning_starts=500, seed=0),
                    progress=False)
    assert np.mean(dqn.returns[-10:]) > 2 * np.mean(dqn.returns[:10]), dqn.returns
