"""Evaluation videos of a trained run, rendered off-screen (no display needed).

    algd video runs/HopperVelocity/algd-vesde/seed0-…   # → <run>/eval.mp4 (eval.gif without ffmpeg)
    record_video("runs/…", episodes=2, out="hopper.mp4")

MuJoCo renders headless through EGL (``MUJOCO_GL=egl``, Mesa's libEGL) or OSMesa
(``MUJOCO_GL=osmesa``, needs ``libosmesa6``). :func:`record_video` uses EGL unless
``MUJOCO_GL`` is already set, and explains what to install when the backend cannot start. GIFs need
nothing more than Pillow (a Matplotlib dependency); MP4 needs ``pip install 'algd[video]'``
(imageio-ffmpeg).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from algd.config import ConfigError
from algd.train.checkpoint import checkpoint_file, load_run


class VideoUnavailableError(ConfigError):
    """Rendering or writing the video is impossible here; the message says what to install."""


HEADLESS_HELP = (
    "headless rendering needs an off-screen OpenGL: run with MUJOCO_GL=egl (Mesa EGL, Debian "
    "packages libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (package libosmesa6), set before "
    "Python starts"
)


@dataclass
class VideoResult:
    """What :func:`record_video` wrote and the episodes it shows."""

    path: Path  #: the written file
    frames: int
    returns: list[float]  #: undiscounted return of each recorded episode
    costs: list[float]  #: plain cost sum of each recorded episode
    lengths: list[int]  #: steps recorded in each episode


def _prepare_gl() -> None:
    """Choose EGL for off-screen rendering unless the user chose a backend."""
    if not os.environ.get("MUJOCO_GL"):
        os.environ["MUJOCO_GL"] = "egl"  # read by Gymnasium's renderer when it is created
        if "OpenGL" not in sys.modules:  # PyOpenGL fixes its platform on first import
            os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def default_video_path(run_dir: Path) -> Path:
    """``eval.mp4`` where an MP4 writer is installed, else ``eval.gif``."""
    mp4 = importlib.util.find_spec("imageio_ffmpeg") is not None
    return Path(run_dir) / ("eval.mp4" if mp4 else "eval.gif")


def record_video(
    run_dir: Path | str,
    out: Path | str | None = None,
    episodes: int = 1,
    max_steps: int | None = None,
    seed: int = 0,
    deterministic: bool = False,
    checkpoint: str = "last",
    progress: bool = False,
) -> VideoResult:
    """Roll out the run's final (or best) policy and write the rendered frames to ``out``.

    Args:
        run_dir: a run directory with ``config.json`` and ``checkpoint.pt``.
        out: ``.gif`` or ``.mp4`` file (default: :func:`default_video_path`).
        episodes: episodes to record, one after the other.
        max_steps: stop each episode after this many steps (default: its natural end).
        seed: the first episode's reset seed (episode ``i`` uses ``seed + i``).
        deterministic: use the deterministic sampler, as evaluation does.
        checkpoint: ``last`` (``checkpoint.pt``) or ``best`` (``best.pt``).
        progress: count the rendered frames on stderr (``algd video`` does).
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1, got {max_steps} (leave it out to record "
                          "whole episodes)")
    _prepare_gl()
    if importlib.util.find_spec("mujoco") is not None:
        try:
            import mujoco  # noqa: F401  (loads the GL backend MUJOCO_GL names)
        except (ImportError, AttributeError) as exc:
            raise VideoUnavailableError(f"{HEADLESS_HELP} ({type(exc).__name__}: {exc})") \
                from None
    run = load_run(run_dir, checkpoint=checkpoint_file(checkpoint))
    if run.task.make_env is None:
        raise VideoUnavailableError(f"task {run.task.name} has no simulator view to render; "
                                    "its run directory's curves.png shows its paths")
    path = Path(out) if out is not None else default_video_path(run.run_dir)
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"video file must end in .gif or .mp4, got {path.name}")
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise VideoUnavailableError("writing .mp4 needs imageio-ffmpeg: pip install "
                                    "'algd[video]' (or ask for a .gif)")
    import imageio.v2 as imageio
    from tqdm.auto import tqdm

    env = run.task.make_env(render_mode="rgb_array")
    bar = tqdm(desc=f"rendering {episodes} episode{'s' * (episodes != 1)}", unit="frame",
               disable=not progress, dynamic_ncols=True)
    frames: list[ArrayLike] = []  # imageio's mimsave asks for exactly list[ArrayLike]
    returns: list[float] = []
    costs: list[float] = []
    lengths: list[int] = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            frames.append(_render(env))
            total_r = total_c = 0.0
            t = 0
            while max_steps is None or t < max_steps:
                obs_in = np.asarray(obs, dtype=np.float32).reshape(1, -1)
                action = run.agent.act_np(obs_in, deterministic)[0]
                obs, reward, terminated, truncated, info = env.step(action)
                total_r += float(reward)
                total_c += float(info.get("cost", 0.0))
                frames.append(_render(env))
                bar.update()
                t += 1
                if terminated or truncated:
                    break
            returns.append(total_r)
            costs.append(total_c)
            lengths.append(t)
    finally:
        bar.close()
        env.close()
    fps = int(env.metadata.get("render_fps") or 30)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)
    return VideoResult(path, len(frames), returns, costs, lengths)


def _render(env) -> np.ndarray:
    try:
        frame = env.render()
    except Exception as exc:  # the GL backend failed to load or to create a context
        raise VideoUnavailableError(f"{HEADLESS_HELP} ({type(exc).__name__}: "
                                    f"{str(exc).strip().splitlines()[0] if str(exc) else ''})") \
            from None
    if frame is None:
        raise VideoUnavailableError("the environment returned no frame; " + HEADLESS_HELP)
    return np.asarray(frame)
