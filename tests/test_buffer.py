import numpy as np
import pytest
import torch

from algd.buffers import ReplayBuffer


def fill(buf, start, n):
    i = np.arange(start, start + n, dtype=np.float32)
    buf.add(i[:, None].repeat(3, 1), i[:, None].repeat(2, 1), i, -i, i[:, None] + 0.5 * np.ones(3),
            np.zeros(n))


def test_fifo_wraparound_keeps_newest():
    buf = ReplayBuffer(5, 3, 2)
    fill(buf, 0, 3)
    fill(buf, 3, 4)  # wraps: 7 written into 5 slots
    assert len(buf) == 5 and buf.ptr == 2
    assert sorted(buf.reward.tolist()) == [2, 3, 4, 5, 6]
    batch = buf.sample(64)
    assert set(batch.reward.tolist()) <= {2, 3, 4, 5, 6}
    torch.testing.assert_close(batch.cost, -batch.reward)
    torch.testing.assert_close(batch.obs[:, 0], batch.reward)
    torch.testing.assert_close(batch.next_obs[:, 0], batch.reward + 0.5)


def test_sampling_is_seeded_and_state_round_trips():
    a, b = ReplayBuffer(100, 3, 2, seed=7), ReplayBuffer(100, 3, 2, seed=7)
    fill(a, 0, 50)
    fill(b, 0, 50)
    torch.testing.assert_close(a.sample(16).reward, b.sample(16).reward)
    state = a.state_dict()
    c = ReplayBuffer(100, 3, 2, seed=0)
    c.load_state_dict(state)
    torch.testing.assert_close(a.sample(16).reward, c.sample(16).reward)
    assert len(c) == 50
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(10, 3, 2).load_state_dict(state)


def test_saved_buffer_costs_its_rows_not_its_capacity():
    """A checkpoint of a mostly empty buffer holds the stored rows only (torch.save writes a
    view's whole storage), and a full buffer is saved without a copy."""
    import io

    def saved_bytes(buf):
        f = io.BytesIO()
        torch.save(buf.state_dict(), f)
        return f.tell()

    big = ReplayBuffer(1_000_000, 3, 2)
    fill(big, 0, 100)
    assert saved_bytes(big) < 50_000  # 100 rows × 10 floats; the capacity would be ~40 MB
    full = ReplayBuffer(100, 3, 2)
    fill(full, 0, 60)
    fill(full, 60, 90)  # wrapped: every row holds a transition
    fields = full.state_dict()["fields"]
    assert all(s.data_ptr() == f.data_ptr() for s, f in zip(fields, full._fields()))
    c = ReplayBuffer(1_000_000, 3, 2)
    c.load_state_dict(big.state_dict())
    torch.testing.assert_close(c.reward[:100], big.reward[:100])


def test_a_buffer_saved_on_another_kind_of_device_loads_reproducibly():
    """A CUDA generator's state (16 bytes) cannot drive a CPU generator: a run moved from a GPU
    to a CPU continues from a seed derived from it, the same one on every load."""
    a = ReplayBuffer(100, 3, 2, seed=7)
    fill(a, 0, 50)
    state = a.state_dict()
    assert state["generator_device"] == "cpu"
    state = {**state, "generator_device": "cuda",
             "generator": torch.arange(16, dtype=torch.uint8)}  # the shape of a CUDA state
    b, c = ReplayBuffer(100, 3, 2, seed=0), ReplayBuffer(100, 3, 2, seed=1)
    b.load_state_dict(state)
    c.load_state_dict(state)
    assert len(b) == 50
    torch.testing.assert_close(b.sample(16).reward, c.sample(16).reward)


def test_errors():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(4, 1, 1).sample(2)
    with pytest.raises(ValueError):
        ReplayBuffer(0, 1, 1)
