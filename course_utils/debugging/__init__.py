"""When post-training goes wrong (chapter 18): broken runs on purpose, each beside its healthy twin.

failures  each failure as one small, readable bug in an otherwise healthy setting (SFT, PPO,
          GRPO, DPO), the runs that show it on the run dashboard, and what the dashboard should say
"""
