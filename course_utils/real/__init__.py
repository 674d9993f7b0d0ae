"""The real-model track (chapter 16): the same code on a Hugging Face hub model and data set.

* :mod:`course_utils.real.real_model` — the pipeline's stages on a real model (SFT, reward
  model, DPO, PPO), measured without a gold reward;
* :mod:`course_utils.real.hub_data` — hub data sets mapped onto the course's columns;
* :mod:`course_utils.real.distributed` — the course's SFT on several processes (``torchrun`` /
  ``accelerate launch``).
"""
