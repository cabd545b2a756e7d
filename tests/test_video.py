"""Evaluation videos: off-screen rendering of a trained run, and clear errors where impossible."""

import ctypes.util

import numpy as np
import pytest

from algd.algos import get_algo
from algd.cli import main
from algd.config import TrainConfig
from algd.train import Trainer

TINY = dict(steps=200, warmup_steps=100, eval_every=200, eval_episodes=1, batch_size=32,
            progress=False, plot=False)
TINY_ALGO = {"policy_hidden": 16, "critic_hidden": (16, 16)}


def tiny_run(tmp_path, env):
    cfg = TrainConfig(env=env, out=str(tmp_path / env), **TINY)
    return Trainer(cfg, get_algo(cfg.algo).make_config(TINY_ALGO)).run().run_dir


def test_video_of_a_mujoco_run(tmp_path, capsys):
    pytest.importorskip("mujoco")
    import imageio.v2 as imageio

    from algd.analysis.video import VideoUnavailableError, record_video

    run_dir = tiny_run(tmp_path, "HopperVelocity")
    out = tmp_path / "hopper.gif"
    if ctypes.util.find_library("EGL") is None:  # no off-screen OpenGL: a one-line explanation
        with pytest.raises(VideoUnavailableError, match="MUJOCO_GL=egl"):
            record_video(run_dir, out, max_steps=5)
        return
    res = record_video(run_dir, out, episodes=2, max_steps=6)
    frames = imageio.mimread(out)
    assert all(1 <= n <= 6 for n in res.lengths) and len(res.returns) == len(res.costs) == 2
    assert res.frames == len(frames) == sum(n + 1 for n in res.lengths)  # reset + each step
    assert frames[0].ndim == 3 and frames[0].shape[2] in (3, 4)
    assert np.asarray(frames[0]).std() > 5  # a rendered scene, not a blank image
    # the command: default file name next to the run, one line per episode
    assert main(["video", str(run_dir), "--max-steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "episode 0: return" in text and str(run_dir / "eval.") in text
    assert "(undiscounted sums over 3 steps)" in text


def test_mp4_video_of_a_mujoco_run(tmp_path, capsys):
    """With imageio-ffmpeg (the `video` extra) the default file is an MP4 that decodes back to
    the recorded frames."""
    pytest.importorskip("mujoco")
    pytest.importorskip("imageio_ffmpeg")
    if ctypes.util.find_library("EGL") is None:
        pytest.skip("no off-screen OpenGL (EGL) here")
    import imageio.v2 as imageio

    from algd.analysis.video import default_video_path, record_video

    run_dir = tiny_run(tmp_path, "HopperVelocity")
    assert default_video_path(run_dir) == run_dir / "eval.mp4"
    res = record_video(run_dir, episodes=1, max_steps=9)
    assert res.path == run_dir / "eval.mp4" and res.frames == res.lengths[0] + 1
    reader = imageio.get_reader(res.path)
    try:
        frames = [np.asarray(f) for f in reader]
        fps = reader.get_meta_data()["fps"]
    finally:
        reader.close()
    assert len(frames) == res.frames
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3 and frames[0].std() > 5
    assert fps > 0
    # the uncompressed GIF of the same rollout, to compare a decoded frame against
    gif = record_video(run_dir, tmp_path / "same.gif", episodes=1, max_steps=9)
    first = np.asarray(imageio.mimread(gif.path)[0])[..., :3].astype(float)
    assert first.shape == frames[0].shape
    assert np.abs(first - frames[0]).mean() < 8  # lossy codec, same picture


def test_video_explains_what_cannot_be_rendered(tmp_path, capsys):
    run_dir = tiny_run(tmp_path, "PointDetour")
    assert main(["video", str(run_dir)]) == 2
    assert "no simulator view" in capsys.readouterr().err
    assert main(["video", str(run_dir), "--out", str(tmp_path / "v.avi")]) == 2
    assert main(["video", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    for flag in ("--max-steps", "--episodes"):  # refused before anything is loaded or written
        assert main(["video", str(run_dir), flag, "0"]) == 2
        assert "must be >= 1" in capsys.readouterr().err
    assert not list(run_dir.glob("eval.*"))
