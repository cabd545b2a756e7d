"""The energy landscape that guides denoising, seen over a 2-D action box (spec §2.4, §7.5, §8).

At a fixed state s and multiplier λ, with Q the reward critic (min of the twin), Q̄c the
conservative cost estimate (mean + k·std of the ensemble) and h the critic threshold:

* plain Lagrangian           L(a)   = −Q(s,a) + λ (Q̄c(s,a) − h)
* augmented Lagrangian (ALGD) L_A(a) = −Q(s,a) + ([λ + ρ(Q̄c(s,a) − h)]₊² − λ²) / (2ρ)

(both from :mod:`algd.lagrangian.energy`). Where the constraint is active,
``∇²L_A = ∇²L + ρ g ∇²Q̄c + ρ ∇Q̄c ∇Q̄cᵀ`` with ``g = Q̄c − h``: on the feasible-set boundary
(g = 0) the AL adds the positive semi-definite term ``ρ ∇Q̄c ∇Q̄cᵀ``, curvature across the
boundary (spec §8 T3); where the constraint is comfortably slack (λ + ρg ≤ 0) it changes nothing
but a constant (T4). This module computes, for chosen states:

* both energies and g on a grid over the action box (contour plots, boundary g = 0);
* the smallest eigenvalue of the action-Hessian of both energies (exact second derivatives by
  double back-propagation, one 2×2 Hessian per action; :func:`action_hessians`);
* action samples with their denoising paths — the trained policy's reverse chain, or, without a
  policy, the VE-SDE chain driven by the Monte-Carlo score of each energy's Boltzmann density
  exp(−E/β) (spec §2.5: exactly what ALGD's score head is trained to imitate);
* whether those samples are multimodal, by the test of spec §7.5 (:func:`multimodality`).

Without a trained run, :class:`DetourCaricature` gives closed-form critics for the built-in
PointDetour task (see its docstring), so ``algd landscape --demo`` runs in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from algd.config import ConfigError
from algd.diffusion.samplers import ve_reverse
from algd.diffusion.schedules import VESchedule, ve_schedule
from algd.diffusion.score_target import mc_score_target
from algd.envs.point_detour import PointDetourParams, PointDetourVec
from algd.lagrangian.energy import EnergyKind, energy, ucb_cost
from algd.lagrangian.threshold import episode_budget_to_threshold

#: (obs [..., S], act [..., A]) → (Q [...], Q̄c [...]): the two critic values the energies use
CriticFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
KINDS: tuple[EnergyKind, EnergyKind] = ("lagrangian", "augmented")
TITLES = {
    "lagrangian": "plain Lagrangian  L = −Q + λ(Q̄c − h)",
    "augmented": "augmented Lagrangian  L_A (ALGD)",
}


# -- the energies ----------------------------------------------------------------------------------
@dataclass
class EnergyModel:
    """Critics plus the constants that turn them into the two energies."""

    critic: CriticFn
    lam: float  #: λ
    threshold: float  #: h
    rho: float  #: ρ

    def constraint(self, obs: Tensor, act: Tensor) -> Tensor:
        """g = Q̄c(s, a) − h."""
        return self.critic(obs, act)[1] - self.threshold

    def energy(self, kind: EnergyKind, obs: Tensor, act: Tensor) -> Tensor:
        """L (``"lagrangian"``) or L_A (``"augmented"``) at (s, a); shape ``act.shape[:-1]``."""
        q, qc = self.critic(obs, act)
        return energy(kind, q, qc, self.lam, self.threshold, self.rho)


def agent_critic(agent: Any) -> CriticFn:
    """(Q, Q̄c) from an agent's critic bank: min of the reward twin, UCB of the cost ensemble."""
    k = float(getattr(getattr(agent, "cfg", None), "ucb_k", 0.0))

    def critic(obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        q, qc = agent.critic(obs, act)
        return q.min(0).values, ucb_cost(qc, k)

    return critic


# -- curvature -------------------------------------------------------------------------------------
def action_hessians(fn: Callable[[Tensor], Tensor], act: Tensor) -> Tensor:
    """Hessians ``∇²_a fn`` [B, A, A] of a row-wise function ``fn: [B, A] → [B]``.

    Rows must not interact (true of the critics and energies here), so the Hessian of
    ``Σ_b fn(a_b)`` is block-diagonal and its A gradient rows give every block: A + 1 backward
    passes for any B, equal to ``torch.autograd.functional.hessian`` per row (tested).
    """
    a = act.detach().clone().requires_grad_(True)
    dim = a.shape[-1]
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(a).sum(), a, create_graph=True)
        rows = []
        for j in range(dim):
            if not grad.requires_grad:  # fn is affine in a: no second derivative at all
                rows.append(torch.zeros_like(a))
                continue
            (row,) = torch.autograd.grad(grad[:, j].sum(), a, retain_graph=True,
                                         allow_unused=True)
            rows.append(torch.zeros_like(a) if row is None else row)
    hess = torch.stack(rows, 1).detach()  # [B, j, i] = ∂²fn / ∂a_j ∂a_i
    return 0.5 * (hess + hess.transpose(1, 2))


def min_eigenvalue(fn: Callable[[Tensor], Tensor], act: Tensor) -> Tensor:
    """Smallest eigenvalue of ``∇²_a fn`` at every row of ``act`` → [B]."""
    return torch.linalg.eigvalsh(action_hessians(fn, act))[:, 0]


# -- multimodality (spec §7.5) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Modality:
    """Outcome of the two-cluster multimodality test on one state's action samples."""

    multimodal: bool
    shares: tuple[float, float]  #: fraction of samples in each cluster (larger first)
    distance: float  #: distance between the two cluster centres
    spread: float  #: sqrt(var₀ + var₁), var = mean squared distance to the own centre

    @property
    def ratio(self) -> float:
        """distance / spread (multimodal needs > 1.75)."""
        return self.distance / self.spread if self.spread > 0 else math.inf


def two_means(
    x: np.ndarray, rng: np.random.Generator, iterations: int = 20, restarts: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's 2-means with random distinct-point initialisation; the best of ``restarts`` runs
    (lowest within-cluster sum of squares). Returns (labels [N], centres [2, A])."""
    x = np.asarray(x, dtype=np.float64)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(restarts):
        centres = x[rng.choice(len(x), size=2, replace=False)].copy()
        for _ in range(iterations):
            d = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
            labels = d.argmin(1)
            for k in range(2):
                if np.any(labels == k):  # an emptied cluster keeps its centre
                    centres[k] = x[labels == k].mean(0)
        d = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
        labels = d.argmin(1)
        inertia = float(d.min(1).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    assert best is not None
    return best[1], best[2]


def multimodality(
    x: np.ndarray,
    rng: np.random.Generator | int = 0,
    *,
    iterations: int = 20,
    restarts: int = 10,
    min_share: float = 0.15,
    separation: float = 1.75,
) -> Modality:
    """Spec §7.5: 2-means (20 iterations, 10 restarts); multimodal iff both clusters hold at least
    15 % of the samples and the centres are more than ``1.75 · sqrt(var₀ + var₁)`` apart."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need samples [N >= 2, A], got shape {x.shape}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    labels, centres = two_means(x, gen, iterations, restarts)
    shares, variances = [], []
    for k in range(2):
        member = x[labels == k]
        shares.append(len(member) / len(x))
        variances.append(float(((member - centres[k]) ** 2).sum(-1).mean()) if len(member) else 0.0)
    distance = float(np.linalg.norm(centres[0] - centres[1]))
    spread = math.sqrt(sum(variances))
    multimodal = min(shares) >= min_share and distance > separation * spread
    larger, smaller = sorted(shares, reverse=True)
    return Modality(bool(multimodal), (larger, smaller), distance, spread)


# -- action samples and their denoising paths ------------------------------------------------------
@dataclass
class ActionSamples:
    """Sampled actions at one state with the path each took through the reverse chain."""

    #: [K + 1, N, A]: the action entering each reverse step (first step first), then the final one
    paths: np.ndarray
    source: str  #: what produced them (the trained policy, or the chain guided by an energy)

    @property
    def final(self) -> np.ndarray:
        return self.paths[-1]


def chain_paths(inputs: Tensor, action: Tensor) -> np.ndarray:
    """Chronological path [K + 1, N, A] from a recorded chain (``Chain.inputs`` is indexed by
    step t, and the reverse chain runs t = K−1 … 0)."""
    return torch.cat([inputs.flip(0), action.unsqueeze(0)], 0).detach().cpu().numpy()


@torch.no_grad()
def policy_samples(agent: Any, obs: Tensor, n: int) -> ActionSamples:
    """``n`` stochastic samples of a diffusion policy at one state [S], with their paths."""
    chain = agent.policy.sample(obs.unsqueeze(0).expand(n, -1).contiguous(), record=True)
    return ActionSamples(chain_paths(chain.inputs, chain.action), "trained policy")


def energy_guided_samples(
    model: EnergyModel,
    kind: EnergyKind,
    obs: Tensor,
    n: int,
    *,
    schedule: VESchedule | None = None,
    low: Tensor | float = -1.0,
    high: Tensor | float = 1.0,
    mc_samples: int = 32,
    temperature: float = 1.0,
    act_dim: int = 2,
) -> ActionSamples:
    """``n`` samples of the VE-SDE chain whose score is the Monte-Carlo score of exp(−E/β)
    smoothed at each step's noise level (spec §2.3, §2.5), with actions ``tanh(x)`` mapped to the
    box [low, high] as in the policy. Default schedule: ALGD's (K = 5, σ from 0.01 to 1)."""
    schedule = schedule or ve_schedule(5, 0.01, 1.0)
    scale = (torch.as_tensor(high) - torch.as_tensor(low)) / 2.0
    bias = (torch.as_tensor(high) + torch.as_tensor(low)) / 2.0
    obs_n = obs.reshape(1, 1, -1).expand(mc_samples, n, -1)

    def score(a: Tensor, t: int) -> Tensor:
        return mc_score_target(lambda y: model.energy(kind, obs_n, y), a, schedule.sigma_f[t],
                               mc_samples, temperature)

    x = schedule.sigma_max * torch.randn(n, act_dim, dtype=obs.dtype)
    chain = ve_reverse(score, x, schedule, noise=True,
                       squash=lambda z: torch.tanh(z) * scale + bias, record=True)
    assert chain.inputs is not None  # recorded (record=True)
    return ActionSamples(chain_paths(chain.inputs, chain.action), f"chain guided by {kind}")


# -- one state's landscape -------------------------------------------------------------------------
@dataclass
class StateLandscape:
    """Everything drawn and reported for one state."""

    name: str
    obs: np.ndarray  #: [S]
    position: np.ndarray | None  #: (x, y) on the task's map, when it has one
    a1: np.ndarray  #: [n] grid along action dimension 0
    a2: np.ndarray  #: [n] grid along action dimension 1
    constraint: np.ndarray  #: [n, n] g = Q̄c − h on the grid (rows: a2, columns: a1)
    energies: dict[str, np.ndarray]  #: kind → [n, n] energy on the grid
    lam_min: dict[str, np.ndarray]  #: kind → [n, n] smallest Hessian eigenvalue on the grid
    samples: dict[str, ActionSamples]  #: kind → samples drawn over that energy's panel
    readout: dict[str, dict[str, Any]] = field(default_factory=dict)  #: kind → numbers


def analyse_state(
    model: EnergyModel,
    name: str,
    obs: np.ndarray,
    samples: dict[str, ActionSamples],
    *,
    low: np.ndarray,
    high: np.ndarray,
    position: np.ndarray | None = None,
    reference_action: np.ndarray | None = None,
    grid: int = 81,
    rng: np.random.Generator | int = 0,
) -> StateLandscape:
    """Evaluate both energies, g and the Hessians on a grid, and the readout at the samples.

    ``reference_action`` (e.g. the deterministic policy's action) adds the Hessian eigenvalues
    there to the readout.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    a1 = np.linspace(low[0], high[0], grid)
    a2 = np.linspace(low[1], high[1], grid)
    mesh = np.stack(np.meshgrid(a1, a2), -1).reshape(-1, 2)  # row-major over (a2, a1)
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    acts = torch.as_tensor(mesh, dtype=torch.float32)
    obs_b = obs_t.unsqueeze(0).expand(len(acts), -1)
    with torch.no_grad():
        g = model.constraint(obs_b, acts).reshape(grid, grid).cpu().numpy()
    boundary = boundary_points(a1, a2, g)
    energies: dict[str, np.ndarray] = {}
    lam_min: dict[str, np.ndarray] = {}
    readout: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        def fn(a: Tensor, kind: EnergyKind = kind) -> Tensor:
            return model.energy(kind, obs_t.unsqueeze(0).expand(len(a), -1), a)

        with torch.no_grad():
            energies[kind] = fn(acts).reshape(grid, grid).cpu().numpy()
        lam_min[kind] = min_eigenvalue(fn, acts).reshape(grid, grid).cpu().numpy()
        final = samples[kind].final
        eig = min_eigenvalue(fn, torch.as_tensor(final, dtype=torch.float32)).cpu().numpy()
        with torch.no_grad():
            g_s = model.constraint(obs_t.unsqueeze(0).expand(len(final), -1),
                                   torch.as_tensor(final, dtype=torch.float32)).cpu().numpy()
        i_min = int(np.argmin(energies[kind]))
        mode = multimodality(final, gen)
        on_boundary = (min_eigenvalue(fn, torch.as_tensor(boundary, dtype=torch.float32))
                       .cpu().numpy() if len(boundary) else np.zeros(0))
        readout[kind] = {
            "lam_min_median_on_boundary": (float(np.median(on_boundary)) if len(on_boundary)
                                           else float("nan")),
            "boundary_points": int(len(boundary)),
            "lam_min_median_at_samples": float(np.median(eig)),
            "nonconvex_share_at_samples": float(np.mean(eig < 0)),
            "argmin_action": [float(v) for v in mesh[i_min]],
            "lam_min_at_argmin": float(lam_min[kind].reshape(-1)[i_min]),
            "nonconvex_share_of_box": float(np.mean(lam_min[kind] < 0)),
            "feasible_share_of_samples": float(np.mean(g_s <= 0)),
            "multimodal": mode.multimodal,
            "cluster_shares": list(mode.shares),
            "separation_ratio": float(mode.ratio),
            "samples": int(len(final)),
            "sampler": samples[kind].source,
        }
        if reference_action is not None:
            ref = torch.as_tensor(np.asarray(reference_action)[None], dtype=torch.float32)
            readout[kind]["lam_min_at_policy_action"] = float(min_eigenvalue(fn, ref)[0])
    return StateLandscape(name, np.asarray(obs), position, a1, a2, g, energies, lam_min, samples,
                          readout)


def boundary_points(a1: np.ndarray, a2: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Points [M, 2] on the feasible-set boundary g = 0: every sign change of g between
    neighbouring grid points (along rows and columns), placed by linear interpolation. Empty
    when g does not change sign over the box."""
    pts = []
    # along a1 (within each row of constant a2)
    g0, g1 = g[:, :-1], g[:, 1:]
    r, c = np.nonzero((g0 <= 0) != (g1 <= 0))
    t = g0[r, c] / (g0[r, c] - g1[r, c])
    pts.append(np.stack([a1[c] + t * (a1[c + 1] - a1[c]), a2[r]], -1))
    # along a2 (within each column of constant a1)
    g0, g1 = g[:-1, :], g[1:, :]
    r, c = np.nonzero((g0 <= 0) != (g1 <= 0))
    t = g0[r, c] / (g0[r, c] - g1[r, c])
    pts.append(np.stack([a1[c], a2[r] + t * (a2[r + 1] - a2[r])], -1))
    return np.concatenate(pts, 0)


# -- the demo's closed-form critics ----------------------------------------------------------------
class DetourCaricature:
    """Closed-form (Q, Q̄c) for PointDetour states, built from the task's geometry.

    At position p, with u_g = (goal − p)/‖goal − p‖ the heading to the goal, u_h = (c − p)/‖c − p‖
    the heading to the hazard centre c and α = asin(r/‖c − p‖) the hazard's angular radius (the
    headings within α of u_h run into it):

    * **reward critic** ``Q(s, a) = G u_g·a − (μ/2)‖a‖²``: progress towards the goal (the task's
      reward is progress) minus a small term standing in for the speed cap (commands beyond
      ‖a‖ = 1 are not faster). Concave, Hessian −μI.
    * **cost critic** ``Q̄c(s, a) = C · softplus(κ m(a)) / softplus(κ m*)`` with
      ``m(a) = u_h·a − cos α · ‖a‖`` (‖a‖ smoothed as sqrt(‖a‖² + 10⁻⁴)): m is positive exactly for
      headings that run into the hazard, grows with speed and with how straight the heading is,
      and reaches m* = 1 − cos α at full speed straight at the centre, where Q̄c = C, the
      discounted number of hazard steps of that heading, ``γ^{k_in} (1 − γ^{n_in}) / (1 − γ)``
      (entered after k_in = (‖c − p‖ − r)₊ / v steps, n_in steps of chord at speed v). κ = 10/m*
      makes the step from safe to unsafe headings sharp: the boundary Q̄c = h lies just inside the
      two tangent headings. m is concave in a (−cos α‖a‖), so Q̄c bends down across the cone of
      unsafe headings: λQ̄c makes L non-convex there, the source of its two minima at the start.

    It is a caricature — no learned critic is this tidy — with the shape that matters at the
    chosen states: from the start the hazard blocks the greedy heading and the two detours are
    equally good; beside and above the hazard the greedy heading lies at the boundary.
    """

    def __init__(
        self,
        params: PointDetourParams | None = None,
        gamma: float = 0.99,
        threshold: float | None = None,
        progress_gain: float = 3.0,
        speed_penalty: float = 1.0,
        sharpness: float = 10.0,
    ) -> None:
        self.p = params or PointDetourParams()
        self.gamma = gamma
        self.threshold = (episode_budget_to_threshold(2.0, self.p.horizon, gamma)
                          if threshold is None else threshold)
        self.G = progress_gain
        self.mu = speed_penalty
        self.sharpness = sharpness

    def parts(self, obs: Tensor) -> dict[str, Tensor]:
        """u_g, u_h, cos α, C and κ at the states ``obs`` [..., 5] (PointDetour observations)."""
        p = self.p
        pos, to_goal = obs[..., 0:2], obs[..., 2:4]
        to_hazard = torch.as_tensor(p.hazard_center, dtype=obs.dtype) - pos
        dist = to_hazard.norm(dim=-1).clamp_min(1e-6)
        u_g = to_goal / to_goal.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        u_h = to_hazard / dist.unsqueeze(-1)
        k_in = (dist - p.hazard_radius).clamp_min(0.0) / p.max_speed
        n_in = (dist + p.hazard_radius) / p.max_speed - k_in
        gamma = torch.as_tensor(self.gamma, dtype=obs.dtype)
        height = gamma**k_in * (1.0 - gamma**n_in) / (1.0 - gamma)
        cos_alpha = torch.sqrt(1.0 - (p.hazard_radius / dist).clamp(max=1.0).square())
        kappa = self.sharpness / (1.0 - cos_alpha).clamp_min(1e-3)
        return {"u_g": u_g, "u_h": u_h, "cos_alpha": cos_alpha, "height": height, "kappa": kappa}

    def __call__(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        obs = obs.to(act.dtype)
        k = self.parts(obs)
        q = self.G * (k["u_g"] * act).sum(-1) - 0.5 * self.mu * act.square().sum(-1)
        speed = torch.sqrt(act.square().sum(-1) + 1e-4)
        m = (k["u_h"] * act).sum(-1) - k["cos_alpha"] * speed
        m_star = 1.0 - k["cos_alpha"]
        kappa = k["kappa"]
        qc = k["height"] * torch.nn.functional.softplus(kappa * m) / torch.nn.functional.softplus(
            kappa * m_star)
        return q, qc


#: states shown for PointDetour (name, position)
POINT_DETOUR_STATES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("start", (-1.0, 0.0)),
    ("beside the hazard", (-0.42, 0.42)),
    ("above the hazard", (0.0, 0.6)),
)


def point_detour_observations(positions: Sequence[Sequence[float]]) -> np.ndarray:
    """PointDetour observations [N, 5] of a robot at the given positions."""
    return PointDetourVec(1).observe(np.asarray(positions, dtype=np.float64))


def parse_positions(text: str) -> list[tuple[float, float]]:
    """``"x,y;x,y"`` → [(x, y), ...] (a one-line error for anything else)."""
    out = []
    for part in text.split(";"):
        if not part.strip():
            continue
        try:
            x, y = (float(v) for v in part.split(","))
        except ValueError:
            raise ConfigError(f"--positions expects 'x,y;x,y;...', got {part.strip()!r}") from None
        out.append((x, y))
    if not out:
        raise ConfigError("--positions is empty")
    return out


# -- a whole figure: trained run or demo -----------------------------------------------------------
@dataclass
class LandscapeResult:
    """The analysed states plus what is needed to draw and describe them."""

    title: str
    states: list[StateLandscape]
    lam: float
    rho: float
    threshold: float
    draw_arena: Callable[[Any], None] | None = None
    axis_labels: tuple[str, str] = ("action dimension 1", "action dimension 2")
    notes: list[str] = field(default_factory=list)


POINT_DETOUR_AXES = ("a₁: x-velocity command (speed 0.1 per unit)",
                     "a₂: y-velocity command (speed 0.1 per unit)")


def landscape_demo(
    *,
    lam: float = 1.0,
    rho: float = 1.0,
    positions: Sequence[Sequence[float]] | None = None,
    samples: int = 128,
    temperature: float = 0.25,
    grid: int = 81,
    seed: int = 0,
) -> LandscapeResult:
    """Landscapes of the closed-form :class:`DetourCaricature` critics (no checkpoint needed).

    Denoising paths come from the VE-SDE chain guided by each energy's own Monte-Carlo score of
    exp(−E/β), so the two panels show how sampling behaves under L and under L_A. The default
    β = 0.25 (ALGD trains with β = 1) makes the samples concentrate visibly on the caricature's
    energy scale, which is arbitrary.
    """
    from algd.envs.registry import get_task

    torch.manual_seed(seed)
    caricature = DetourCaricature()
    model = EnergyModel(caricature, lam, caricature.threshold, rho)
    named = _named_positions(positions)
    observations = point_detour_observations([p for _, p in named])
    states = []
    for (name, pos), obs in zip(named, observations):
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        drawn: dict[str, ActionSamples] = {
            kind: energy_guided_samples(model, kind, obs_t, samples, temperature=temperature)
            for kind in KINDS}
        states.append(analyse_state(model, name, obs, drawn, low=np.array([-1.0, -1.0]),
                                    high=np.array([1.0, 1.0]), position=np.asarray(pos),
                                    grid=grid, rng=seed))
    return LandscapeResult(
        title=f"Energy landscapes on PointDetour with closed-form critics (demo): "
        f"λ = {lam:g}, ρ = {rho:g}, h = {caricature.threshold:.3g}, β = {temperature:g}",
        states=states, lam=lam, rho=rho, threshold=caricature.threshold,
        draw_arena=get_task("PointDetour").draw_arena, axis_labels=POINT_DETOUR_AXES,
        notes=["critics: DetourCaricature (progress reward; cost rising for headings into the "
               "hazard, boundary at the tangent headings)",
               "paths: VE-SDE chain (K = 5) driven by the Monte-Carlo score of exp(−E) of each "
               "panel's energy"],
    )


def _named_positions(
    positions: Sequence[Sequence[float]] | None,
) -> list[tuple[str, tuple[float, float]]]:
    if positions is None:
        return [(n, p) for n, p in POINT_DETOUR_STATES]
    return [(f"({x:g}, {y:g})", (float(x), float(y))) for x, y in positions]


def landscape_run(
    run_dir: str,
    *,
    lam: float | None = None,
    rho: float | None = None,
    positions: Sequence[Sequence[float]] | None = None,
    states: str = "auto",
    samples: int = 128,
    grid: int = 81,
    seed: int = 0,
) -> LandscapeResult:
    """Landscapes of a trained run's critics, with its policy's denoising paths.

    Args:
        run_dir: the run directory.
        lam: λ (default: the run's final λ). rho: ρ (default: the run's ρ, else 1).
        positions: PointDetour positions to show (default: start, beside and above the hazard).
        states: ``"auto"`` (named positions on PointDetour, else from a rollout), ``"named"`` or
            ``"rollout"``: the start state and the two visited states whose policy action is
            closest to the feasible-set boundary (deterministic episodes).
    """
    from algd.train.checkpoint import load_run

    run = load_run(run_dir, "cpu")  # small networks, a few thousand points: the CPU is enough
    agent = run.agent
    if not hasattr(agent, "critic"):
        raise ConfigError(f"{run.train_cfg.algo} has no critic bank (agent.critic): the "
                          "landscape needs Q and Qc critics")
    env = run.task.make(1)
    act_dim = env.act_dim
    low = np.asarray(env.single_action_space.low, dtype=np.float64)
    high = np.asarray(env.single_action_space.high, dtype=np.float64)
    env.close()
    if act_dim != 2:
        raise ConfigError(f"the landscape is drawn over a 2-D action box; {run.task.name} has "
                          f"{act_dim}-D actions")
    torch.manual_seed(seed)
    lam = float(agent.lagrange_multiplier) if lam is None else float(lam)
    # a SAC-family run has no ρ: its augmented panel uses 1 unless --rho says otherwise
    rho_note = ("" if rho is not None or hasattr(run.algo_cfg, "rho") else
                f" (default: {run.train_cfg.algo} has no ρ)")
    rho = float(getattr(run.algo_cfg, "rho", 1.0)) if rho is None else float(rho)
    model = EnergyModel(agent_critic(agent), lam, run.threshold, rho)
    is_detour = run.task.name == "PointDetour"
    if states == "auto":
        states = "named" if is_detour else "rollout"
    if states == "named":
        if not is_detour:
            raise ConfigError("named states and --positions exist for PointDetour only; use "
                              "--states rollout")
        named = _named_positions(positions)
        observations = list(point_detour_observations([p for _, p in named]))
        names = [n for n, _ in named]
    elif states == "rollout":
        names, observations = _rollout_states(run, model, seed)
    else:
        raise ConfigError(f"--states must be auto, named or rollout, got {states!r}")
    analysed = []
    for name, obs in zip(names, observations):
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        drawn = _agent_samples(agent, obs_t, samples)
        det = agent.act_np(np.asarray(obs, dtype=np.float32)[None], deterministic=True)[0]
        pos = run.task.position(np.asarray(obs)) if run.task.position is not None else None
        analysed.append(analyse_state(
            model, name, np.asarray(obs), {k: drawn for k in KINDS}, low=low,
            high=high, position=pos, reference_action=det, grid=grid, rng=seed))
    return LandscapeResult(
        title=f"Energy landscapes of {run.train_cfg.algo} on {run.task.name} (seed "
        f"{run.train_cfg.seed}, {run.env_steps} env steps; {_trained_on(run.algo_cfg)}): "
        f"λ = {lam:.3g}, ρ = {rho:g}{rho_note}, "
        f"h = {run.threshold:.3g}",
        states=analysed, lam=lam, rho=rho, threshold=run.threshold,
        draw_arena=run.task.draw_arena,
        axis_labels=POINT_DETOUR_AXES if is_detour else ("action dimension 1",
                                                         "action dimension 2"),
        notes=[f"critics: the run's (Q = min of the reward twin, Q̄c = mean + "
               f"{getattr(run.algo_cfg, 'ucb_k', 0):g}·std of the cost ensemble)",
               "paths: the trained policy's reverse chain (same samples on both panels)"],
    )


def _trained_on(algo_cfg: Any) -> str:
    """What the run's policy was trained on, for a landscape's title: the energy of a guided
    diffusion policy (ALGD, LGD), or a SAC-family actor's objective, which is not the energy
    drawn."""
    kind = getattr(algo_cfg, "energy", None)
    if kind is not None:
        return f"trained on the {'augmented' if kind == 'augmented' else 'plain'} Lagrangian"
    rectified = getattr(algo_cfg, "convexity", 0.0) > 0
    return ("a SAC actor trained on Q − λ·Q̄c with CAL's rectified λ" if rectified else
            "a SAC actor trained on Q − λ·Q̄c")


def _agent_samples(agent: Any, obs: Tensor, n: int) -> ActionSamples:
    policy = getattr(agent, "policy", None)
    if policy is not None and hasattr(policy, "sample"):
        return policy_samples(agent, obs, n)
    actions = agent.act(obs.unsqueeze(0).expand(n, -1), deterministic=False)
    return ActionSamples(actions.detach().cpu().numpy()[None], "trained policy (no chain)")


def _rollout_states(run: Any, model: EnergyModel, seed: int) -> tuple[list[str], list[np.ndarray]]:
    """The first state of a deterministic episode and the two visited states whose policy
    action is closest to the boundary Q̄c = h (active side preferred, as in spec §7.5)."""
    from algd.train.evaluate import evaluate

    env = run.task.make(4)
    res = evaluate(run.agent, env, 4, deterministic=True, seed=seed, record=True)
    env.close()
    visited = np.concatenate([t[:-1] for t in res.trajectories]).astype(np.float32)
    obs = torch.as_tensor(visited)
    with torch.no_grad():
        g = model.constraint(obs, run.agent.act(obs, deterministic=True)).cpu().numpy()
    active = model.lam + model.rho * g > 0
    order = np.lexsort((np.abs(g), ~active))  # active first, then closest to g = 0
    picks = [int(i) for i in order[:2]]
    names = ["start"] + [f"near boundary (g = {g[i]:+.2f})" for i in picks]
    return names, [res.trajectories[0][0]] + [visited[i] for i in picks]


# -- drawing and reporting -------------------------------------------------------------------------
def plot_landscape(result: LandscapeResult, out: str | Any, *, paths: int = 12) -> list[Any]:
    """Draw :func:`landscape_figure` to ``out`` (PNG) and the same name with ``.svg``; returns
    both paths."""
    import matplotlib

    from algd.analysis.plots import save_png_and_svg

    # hatch colours are set per panel (rcParams, read at save time before matplotlib 3.10):
    # drawn and saved in one context, which leaves the global style alone
    with matplotlib.rc_context():
        return save_png_and_svg(_landscape_figure(result, paths, matplotlib), out, dpi=100)


def landscape_figure(result: LandscapeResult, *, paths: int = 12) -> Any:
    """One row per state: the map (when the task has one), L and L_A over the action box, with
    the feasible-set boundary, the non-convex region and ``paths`` denoising paths; a matplotlib
    Figure (with matplotlib < 3.10 the hatch colours are right only in :func:`plot_landscape`'s
    files)."""
    import matplotlib

    with matplotlib.rc_context():
        return _landscape_figure(result, paths, matplotlib)


def _landscape_figure(result: LandscapeResult, paths: int, mpl: Any) -> Any:
    import matplotlib.lines as mlines
    import matplotlib.patches as mpatches

    from algd.analysis.plots import new_figure

    with_map = result.draw_arena is not None and all(s.position is not None
                                                     for s in result.states)
    ncols = 3 if with_map else 2
    nrows = len(result.states)
    fig, axes = new_figure(nrows, ncols, figsize=(5.6 * ncols, 4.9 * nrows + 0.9))
    for row, st in enumerate(result.states):
        col0 = 0
        if with_map:
            _draw_map(axes[row, 0], result, st, mpl)
            col0 = 1
        for j, kind in enumerate(KINDS):
            _draw_energy(axes[row, col0 + j], fig, result, st, kind, paths, mpl)
    handles = [
        mlines.Line2D([], [], color="white", lw=2.2, path_effects=_outline(),
                      label="feasible-set boundary Q̄c = h"),
        _hatched_patch(mpatches, "white", "//", "infeasible actions (Q̄c > h)"),
        _hatched_patch(mpatches, "tab:orange", "\\\\",
                       "non-convex: ∇²E has a negative eigenvalue"),
        mlines.Line2D([], [], color="white", lw=0.8, marker="o", mfc="none", mec="white", ms=4,
                      path_effects=_outline(1.5), label="denoising path (○ start)"),
        mlines.Line2D([], [], color="none", marker="o", mfc="tab:red", mec="k", ms=5,
                      label="sampled action (end of the chain)"),
        mlines.Line2D([], [], color="none", marker="*", mfc="gold", mec="k", ms=12,
                      label="lowest energy on the grid"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=True,
               facecolor="0.85")
    fig.suptitle(result.title + "\n" + "; ".join(result.notes), fontsize=10)
    height = 4.9 * nrows + 0.9  # inches: the legend below, the two-line title above
    fig.tight_layout(rect=(0, 0.9 / height + 0.02, 1, 1 - 0.55 / height))
    return fig


def _hatched_patch(mpatches: Any, colour: str, hatch: str, label: str) -> Any:
    """A legend swatch hatched in ``colour`` (matplotlib >= 3.10 takes the hatch colour per
    patch; older ones draw it in rcParams' colour at save time, i.e. the last one set)."""
    try:
        return mpatches.Patch(facecolor="0.35", edgecolor=colour, hatch=hatch, hatchcolor=colour,
                              label=label)
    except AttributeError:
        return mpatches.Patch(facecolor="0.35", edgecolor=colour, hatch=hatch, label=label)


def _round_ticks(ax: Any) -> None:
    """About 5 round ticks per axis with one decimal (−1.0, −0.5, … 1.0), so labels never run
    together."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(FormatStrFormatter("%.1f"))


def _outline(width: float = 3.0) -> list:
    import matplotlib.patheffects as pe

    return [pe.Stroke(linewidth=width, foreground="black"), pe.Normal()]


def _draw_map(ax: Any, result: LandscapeResult, st: StateLandscape, mpl: Any) -> None:
    # drawn only when the result has an arena and every state a position (see with_map)
    assert result.draw_arena is not None and st.position is not None
    result.draw_arena(ax)
    for i, other in enumerate(result.states):
        assert other.position is not None
        ax.plot(*other.position, "o", color="0.6", ms=5, label="other states" if i == 0 else None)
    ax.plot(*st.position, "*", color="k", ms=15, label="this state")
    ax.legend(loc="lower right", fontsize=7)
    ax.annotate(st.name, st.position, textcoords="offset points", xytext=(8, 8), fontsize=9)
    ax.set(title=f"state: {st.name}", xlabel="x position", ylabel="y position", aspect="equal")


def colour_range(e: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """Colour range of an energy panel: from its minimum to its maximum over the feasible actions
    (when at least 5 % of the box is feasible), so the feasible landscape is resolved and a steep
    penalty wall saturates instead of flattening everything else; else to the 97 % quantile."""
    lo = float(e.min())
    feasible = g <= 0
    hi = float(e[feasible].max()) if feasible.mean() >= 0.05 else float(np.quantile(e, 0.97))
    return lo, hi if hi > lo + 1e-9 else lo + 1e-6


def _draw_energy(ax: Any, fig: Any, result: LandscapeResult, st: StateLandscape, kind: str,
                 n_paths: int, mpl: Any) -> None:
    e = st.energies[kind]
    lo, hi = colour_range(e, st.constraint)
    saturated = bool(e.max() > hi)  # a steep penalty wall beyond the range: one colour, an arrow
    cs = ax.contourf(st.a1, st.a2, e, levels=np.linspace(lo, hi, 25), cmap="viridis",
                     extend="max" if saturated else "neither")
    cbar = fig.colorbar(cs, ax=ax, fraction=0.046, pad=0.03)
    from matplotlib.ticker import MaxNLocator

    cbar.set_ticks(MaxNLocator(5).tick_values(lo, hi)[1:-1] if hi - lo > 0 else [lo])
    cbar.set_label("energy E(s, a), lower preferred" + (" (▲: above the range)" if saturated
                                                        else ""), fontsize=8)
    lm = st.lam_min[kind]
    if (lm < 0).any() and (lm >= 0).any():
        ax.contour(st.a1, st.a2, lm, levels=[0.0], colors="tab:orange", linewidths=1.2,
                   linestyles="--")
    if (lm < 0).any():
        mpl.rcParams["hatch.color"] = "tab:orange"
        ax.contourf(st.a1, st.a2, lm, levels=[lm.min() - 1.0, 0.0], colors="none",
                    hatches=["\\\\"])
    g = st.constraint
    if (g > 0).any():
        mpl.rcParams["hatch.color"] = "white"
        ax.contourf(st.a1, st.a2, g, levels=[0.0, g.max() + 1.0], colors="none", hatches=["//"])
        if (g < 0).any():
            ax.contour(st.a1, st.a2, g, levels=[0.0], colors="white", linewidths=2.2)
            for c in ax.collections[-1:]:
                c.set_path_effects(_outline())
    p = st.samples[kind].paths[:, :n_paths]
    for i in range(p.shape[1]):
        ax.plot(p[:, i, 0], p[:, i, 1], "-", color="white", lw=0.7, alpha=0.9,
                path_effects=_outline(1.4))
        ax.plot(p[0, i, 0], p[0, i, 1], "o", mfc="none", mec="white", ms=3.5)
    final = st.samples[kind].final
    ax.plot(final[:, 0], final[:, 1], "o", mfc="tab:red", mec="k", ms=4, mew=0.5, clip_on=False,
            zorder=5)
    r = st.readout[kind]
    ax.plot(*r["argmin_action"], "*", mfc="gold", mec="k", ms=14, clip_on=False, zorder=6)
    mm = "multimodal" if r["multimodal"] else "unimodal"
    shares = "/".join(f"{100 * s:.0f}%" for s in r["cluster_shares"])
    ax.set_title(
        f"{st.name}: {TITLES[kind]}\n"
        f"min. eigenvalue of ∇²E, median: boundary "
        f"{_fmt(r['lam_min_median_on_boundary'], 'none')}, "
        f"samples {_fmt(r['lam_min_median_at_samples'])}\n"
        f"samples {mm} (clusters {shares}), {100 * r['feasible_share_of_samples']:.0f}% feasible",
        fontsize=9,
    )
    ax.set(xlabel=result.axis_labels[0], ylabel=result.axis_labels[1],
           xlim=(st.a1[0], st.a1[-1]), ylim=(st.a2[0], st.a2[-1]), aspect="equal")
    _round_ticks(ax)


def _fmt(x: float, missing: str = "–") -> str:
    """Signed, 3 significant digits (a curvature of 0.004 is not '+0.00'); ``missing`` if NaN."""
    if not math.isfinite(x):
        return missing
    return "0" if x == 0 else f"{x:+.3g}"


def readout_dict(result: LandscapeResult) -> dict[str, Any]:
    """The numbers behind the figure (JSON-ready)."""
    return {
        "title": result.title,
        "lambda": result.lam,
        "rho": result.rho,
        "threshold": result.threshold,
        "notes": result.notes,
        "states": [
            {"name": st.name, "observation": [float(v) for v in st.obs],
             "position": None if st.position is None else [float(v) for v in st.position],
             **{kind: st.readout[kind] for kind in KINDS}}
            for st in result.states
        ],
    }


def format_readout(result: LandscapeResult) -> str:
    """A plain-text table: per state and energy, curvature and multimodality."""
    w = max([20, *(len(st.name) for st in result.states)])  # names are never cut
    lines = [result.title,
             f"  {'state':{w}s} {'energy':6s} {'min-eig boundary':>16s} {'min-eig samples':>15s} "
             f"{'min-eig policy':>14s} {'non-convex':>10s} {'feasible':>8s} {'multimodal':>14s}"]
    for st in result.states:
        for kind in KINDS:
            r = st.readout[kind]
            at_policy = r.get("lam_min_at_policy_action")
            mm = ("yes" if r["multimodal"] else "no") + f" ({r['separation_ratio']:.2f})"
            lines.append(
                f"  {st.name:{w}s} {'L' if kind == 'lagrangian' else 'L_A':6s} "
                f"{_fmt(r['lam_min_median_on_boundary']):>16s} "
                f"{_fmt(r['lam_min_median_at_samples']):>15s} "
                f"{'–' if at_policy is None else _fmt(at_policy):>14s} "
                f"{100 * r['nonconvex_share_of_box']:9.0f}% "
                f"{100 * r['feasible_share_of_samples']:7.0f}% {mm:>14s}"
            )
    lines.append(
        "  min-eig: smallest eigenvalue of the energy's action-Hessian; median over points on the "
        "boundary Q̄c = h (– if the box has none), over the sampled actions, "
        "and at the deterministic policy action. non-convex: share of the action box where "
        "min-eig < 0. feasible: share of samples with Q̄c ≤ h. multimodal: spec §7.5 test "
        "(centre distance / spread in brackets; multimodal needs > 1.75 and both clusters ≥ 15%)."
    )
    return "\n".join(lines)
