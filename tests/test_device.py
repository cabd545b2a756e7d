"""The same code on CUDA (skipped without a GPU): the update matches the CPU within tolerance and
checkpoints move between devices."""

import copy

import numpy as np
import pytest
import torch

from algd.algos import ALGD, ALGDConfig, EnvInfo
from algd.buffers import Batch, ReplayBuffer
from algd.train.seeding import resolve_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
INFO = EnvInfo(5, 2, -np.ones(2, np.float32), np.ones(2, np.float32), 0.5)


def test_auto_device_resolves_to_what_is_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0"):
            with pytest.raises(ValueError, match=f"'{name}' requested but CUDA is not available"):
                resolve_device(name)
    assert resolve_device("cpu:0") == resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name, message", [
    ("mps", "'mps' is not supported"), ("meta", "'meta' is not supported"),
    ("cpu:3", "the CPU takes no index"), ("gpu", "unknown device 'gpu'"),
])
def test_devices_the_loop_does_not_cover_are_refused_by_name(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_cli_refuses_an_unsupported_device_in_one_line(tmp_path, capsys):
    from algd.cli import main

    assert main(["train", "--device", "mps", "--steps", "10", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "'mps' is not supported" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@cuda
@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_cuda_update_matches_cpu(variant):
    torch.manual_seed(0)
    cpu = ALGD(INFO, ALGDConfig(variant=variant, policy_hidden=32, critic_hidden=(32, 32)),
               torch.device("cpu"))
    gpu = ALGD(INFO, copy.deepcopy(cpu.cfg), torch.device("cuda"))
    gpu.load_state_dict(cpu.state_dict())
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(64, 5, generator=g), torch.rand(64, 2, generator=g),
                  torch.randn(64, generator=g), torch.rand(64, generator=g),
                  torch.randn(64, 5, generator=g), torch.zeros(64))
    # critic step with the same next actions: compare losses (sampling noise differs by device)
    cpu_q = cpu.critic(batch.obs, batch.act)
    gpu_q = gpu.critic(batch.obs.cuda(), batch.act.cuda())
    for a, b in zip(cpu_q, gpu_q):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-4)
    obs = batch.obs[:8]
    torch.testing.assert_close(cpu.act(obs, deterministic=True),
                               gpu.act(obs.cuda(), deterministic=True).cpu(), rtol=1e-4, atol=1e-4)
    diag = gpu.update(Batch(*(t.cuda() for t in batch)))
    assert all(v.is_cuda and torch.isfinite(v) for v in diag.values())


@cuda
def test_cuda_replay_buffer_samples_on_device():
    buf = ReplayBuffer(100, 5, 2, "cuda", seed=0)
    buf.add(np.zeros((10, 5)), np.zeros((10, 2)), np.arange(10), np.zeros(10), np.zeros((10, 5)),
            np.zeros(10))
    assert buf.sample(4).reward.is_cuda
