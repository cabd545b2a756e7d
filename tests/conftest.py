import os

import pytest
import torch

# Tests are small: one torch thread avoids oversubscribing CI's 2 cores and keeps runs repeatable.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
