"""Reinforcement learning without language models (chapters 06-08).

* :mod:`course_utils.rl.tabular` — Bellman solvers, value iteration and Q-learning on small MDPs;
* :mod:`course_utils.rl.dqn` — DQN: replay buffer, target network, the TD loss;
* :mod:`course_utils.rl.ppo` — GAE and the clipped PPO update, the one PPO core that chapter 10
  reuses for the language model;
* :mod:`course_utils.rl.policy_gradient` — PPO on Gymnasium environments (CartPole).

Nothing here knows about language models: these modules import only each other.
"""
