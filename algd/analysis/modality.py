"""How often a policy is multimodal near the cost boundary (spec §7.5 ``boundary_multimodality``,
§8 T7).

The paper's claim: near the feasible-set boundary the augmented-Lagrangian energy keeps several
good actions apart (detours on either side of a hazard, say), and a diffusion policy guided by it
represents them, where a Gaussian policy (SAC-AugLag) must pick one. The test, for several runs on
the *same* states:

1. **states**: a reference run's deterministic policy is rolled out; among the visited states the
   ``n`` (50) whose action lies closest to the boundary by the reference's own critics,
   ``|Q̄c(s, π(s)) − h|`` smallest, are kept (:func:`boundary_states`);
2. **samples**: every run draws ``samples`` (128) actions per state from its stochastic policy;
3. **test**: 2-means with 20 iterations and 10 restarts; a state is multimodal iff both clusters
   hold ≥ 15 % of the samples and their centres lie more than ``1.75 · sqrt(var₀ + var₁)`` apart
   (:func:`algd.analysis.landscape.multimodality`);
4. **rate**: the share of multimodal states per run (:func:`modality_rate`).

**A caveat the reference's test carries**, measured (``tests/test_modality.py``): the spread in
step 3 sums the variance over all action dimensions, so the test is not invariant to the shape
of a distribution. A unimodal Gaussian stretched along one direction scores a ratio of ≈ 1.9
(an isotropic 2-D one ≈ 1.0), above the 1.75 threshold: it counts as multimodal, and so does a
near-deterministic policy that varies along one action dimension only. Each rate therefore comes
with a **Gaussian control**: the same test on as many draws from a Gaussian with the samples' own
mean and covariance. A rate well above its control reflects modes; a rate matched by the control
reflects elongation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from algd.analysis.landscape import EnergyModel, Modality, agent_critic, multimodality
from algd.config import ConfigError


@dataclass
class BoundaryStates:
    """States near a reference policy's cost boundary."""

    obs: np.ndarray  #: [n, S]
    g: np.ndarray  #: [n] Q̄c − h at the reference's deterministic action (reference critics)
    reference: str  #: the reference run directory
    visited: int  #: how many visited states they were chosen from


@dataclass
class ModalityRate:
    """One run's multimodality test on every boundary state."""

    run: str
    algo: str
    per_state: list[Modality] = field(default_factory=list)
    #: the test on a Gaussian with each state's sample mean and covariance (see the caveat above)
    control: list[Modality] = field(default_factory=list)

    @property
    def multimodal(self) -> int:
        return sum(m.multimodal for m in self.per_state)

    @property
    def rate(self) -> float:
        return self.multimodal / len(self.per_state) if self.per_state else float("nan")

    @property
    def median_ratio(self) -> float:
        """Median of centre distance / spread over the states (multimodal needs > 1.75)."""
        return float(np.median([m.ratio for m in self.per_state]))

    @property
    def control_rate(self) -> float:
        """The rate of the same-covariance Gaussian control."""
        return (sum(m.multimodal for m in self.control) / len(self.control) if self.control
                else float("nan"))


def boundary_states(run: Any, n: int = 50, episodes: int = 20, seed: int = 0) -> BoundaryStates:
    """The ``n`` visited states of ``episodes`` deterministic episodes of ``run`` (a
    :class:`~algd.train.checkpoint.LoadedRun`) whose deterministic action is closest to the
    boundary ``Q̄c = h`` of the run's own critics."""
    from algd.train.evaluate import evaluate

    agent = run.agent
    if not hasattr(agent, "critic"):
        raise ConfigError(f"the reference run ({run.train_cfg.algo}) has no critic bank: boundary "
                          "states are chosen by its cost critic")
    env = run.task.make(min(episodes, 8))
    try:
        res = evaluate(agent, env, episodes, deterministic=True, seed=seed, record=True)
    finally:
        env.close()
    visited = np.concatenate([t[:-1] for t in res.trajectories]).astype(np.float32)
    if len(visited) < n:
        raise ConfigError(f"{episodes} episodes visited only {len(visited)} states, fewer than the "
                          f"{n} requested: raise --episodes")
    model = EnergyModel(agent_critic(agent), 0.0, run.threshold, 1.0)
    obs = torch.as_tensor(visited, device=agent.device)
    with torch.no_grad():
        g = model.constraint(obs, agent.act(obs, deterministic=True)).cpu().numpy()
    keep = np.argsort(np.abs(g), kind="stable")[:n]
    return BoundaryStates(visited[keep], g[keep], str(run.run_dir), len(visited))


def action_samples(agent: Any, obs: np.ndarray, samples: int) -> np.ndarray:
    """``samples`` stochastic actions per state: [n, samples, A] (one batched policy call)."""
    obs_t = torch.as_tensor(obs, dtype=torch.float32, device=agent.device)
    rows = obs_t.repeat_interleave(samples, dim=0)
    with torch.no_grad():
        actions = agent.act(rows, deterministic=False)
    return actions.reshape(len(obs), samples, -1).cpu().numpy()


def modality_rate(run: Any, states: BoundaryStates, samples: int = 128,
                  seed: int = 0) -> ModalityRate:
    """Sample ``run``'s policy at every boundary state and apply the two-cluster test."""
    torch.manual_seed(seed)
    acts = action_samples(run.agent, states.obs, samples)
    gen = np.random.default_rng(seed)
    tests = [multimodality(a, gen) for a in acts]
    control = [multimodality(gaussian_like(a, gen), gen) for a in acts]
    return ModalityRate(str(run.run_dir), run.train_cfg.algo, tests, control)


def gaussian_like(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As many draws as ``x`` [N, A] has rows from N(mean(x), cov(x)): a unimodal stand-in with
    the same location, scale and shape."""
    x = np.asarray(x, dtype=np.float64)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return rng.multivariate_normal(x.mean(0), cov, size=len(x), method="eigh")


def compare_modality(run_dirs: Sequence[str | Path] | str | Path, *,
                     reference: str | Path | None = None,
                     states: int = 50, samples: int = 128, episodes: int = 20,
                     seed: int = 0) -> tuple[BoundaryStates, list[ModalityRate]]:
    """Boundary states from ``reference`` (default: the first run), then every run's rate
    (``run_dirs``: one run directory or a list of them)."""
    from algd.train.checkpoint import load_run

    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    if states < 1 or samples < 2 or episodes < 1:
        raise ConfigError(f"need states >= 1, samples >= 2 and episodes >= 1, got {states}, "
                          f"{samples}, {episodes}")
    runs = [load_run(d, "cpu") for d in run_dirs]
    loaded = {Path(r.run_dir).resolve(): r for r in runs}
    ref = runs[0] if reference is None else (loaded.get(Path(reference).resolve())
                                              or load_run(reference, "cpu"))
    tasks = {r.task.name for r in [ref, *runs]}
    if len(tasks) > 1:
        raise ConfigError(f"the runs are on different tasks ({', '.join(sorted(tasks))}): the "
                          "rates are only comparable on the same states")
    chosen = boundary_states(ref, states, episodes, seed)
    return chosen, [modality_rate(r, chosen, samples, seed) for r in runs]


def format_modality(chosen: BoundaryStates, rates: Sequence[ModalityRate]) -> str:
    lines = [f"{len(chosen.obs)} boundary states of {chosen.reference} (closest to Q̄c = h among "
             f"{chosen.visited} visited; |Q̄c − h| ≤ {np.abs(chosen.g).max():.3g})", "",
             f"{'algorithm':12s} {'multimodal':>12s} {'rate':>6s} {'median ratio':>13s} "
             f"{'control rate':>17s}  run"]
    for r in rates:
        lines.append(f"{r.algo:12s} {f'{r.multimodal}/{len(r.per_state)}':>12s} {r.rate:6.0%} "
                     f"{r.median_ratio:13.2f} {r.control_rate:17.0%}  {r.run}")
    by_algo: dict[str, list[ModalityRate]] = {}
    for r in rates:
        by_algo.setdefault(r.algo, []).append(r)
    if any(len(rs) > 1 for rs in by_algo.values()):  # several seeds: one line per algorithm
        lines += ["", f"{'over seeds':12s} {'runs':>12s} {'rate':>6s} {'(min–max)':>13s} "
                      f"{'control rate':>17s}"]
        for algo, rs in by_algo.items():
            r_rates = [r.rate for r in rs]
            lines.append(f"{algo:12s} {len(rs):12d} {np.mean(r_rates):6.0%} "
                         f"{f'{min(r_rates):.0%}–{max(r_rates):.0%}':>13s} "
                         f"{np.mean([r.control_rate for r in rs]):17.0%}")
    lines += ["", "multimodal: 2-means, both clusters ≥ 15 % of the samples and centre distance "
              "> 1.75 × spread (the ratio).",
              "control rate: the rate of the same test on a Gaussian with each state's sample mean "
              "and covariance (the Gaussian control);",
              "a rate the control matches reflects elongated samples, not modes "
              "(algd.analysis.modality)."]
    return "\n".join(lines)


def modality_dict(chosen: BoundaryStates, rates: Sequence[ModalityRate]) -> dict[str, Any]:
    return {
        "reference": chosen.reference,
        "states": chosen.obs.tolist(),
        "g": chosen.g.tolist(),
        "runs": [{"run": r.run, "algo": r.algo, "multimodal": r.multimodal, "rate": r.rate,
                  "median_ratio": r.median_ratio, "control_rate": r.control_rate,
                  "per_state": [{"multimodal": m.multimodal, "shares": list(m.shares),
                                 "ratio": m.ratio, "control_multimodal": c.multimodal,
                                 "control_ratio": c.ratio}
                                for m, c in zip(r.per_state, r.control)]} for r in rates],
    }


def write_modality(chosen: BoundaryStates, rates: Sequence[ModalityRate], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(modality_dict(chosen, rates), indent=2) + "\n")
    return out
