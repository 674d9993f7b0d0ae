import os

import matplotlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
matplotlib.use("Agg")  # this process only: notebook kernels keep their inline backend
