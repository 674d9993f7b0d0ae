"""The course's training loop, unchanged, on two CPU processes (gloo) under torchrun and accelerate launch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # on CPUs `--cpu --num_processes 2` silently starts one process; --multi_gpu starts two
    "accelerate": [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_sft_on_two_processes_keeps_ranks_in_step(tmp_path, launcher):
    cmd = LAUNCHERS[launcher] + ["-m", "course_utils.real.distributed", "--steps", "20", "--batch-size", "16",
                                 "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert "MULTI_CPU" in reports[0]["backend"]
    assert reports[0]["fingerprint"] == reports[1]["fingerprint"], "the ranks' weights differ"
    assert reports[0]["losses"] == reports[1]["losses"]          # the logged loss is the mean over ranks
    losses = reports[0]["losses"]
    assert losses[-1] < 0.7 * losses[0], losses
