"""ALGD — Augmented Lagrangian-Guided Diffusion (Cheng et al., arXiv 2602.02924).

Read top to bottom, one gradient update does, in the reference's order (spec §3.4, §10):

1. **Critics** (spec §3.1–3.2). With a' drawn from the current diffusion policy at s'
   (stochastic chain, no entropy term):
       y_r   = r + γ (1 − d) min_i Q'_i(s', a')                       (twin reward target)
       y_c,e = c + γ_c m_c Qc'_e(s', a')   for every ensemble member e (own target member)
   and one Adam step on  Σ_i MSE(Q_i, y_r) + mean_e MSE(Qc_e, y_c,e).
2. **Policy** (spec §2.5–2.6). One recorded reverse chain per batch state gives the final action
   a⁰ and, at a random step τ_b per state, the point a_τ. Then
       J = mean_b E(s_b, a⁰_b)                                          (energy loss, through all K steps)
       φ* = −(1/β) Σ_i softmax_i(−E(ã_i)/β) ∇E(ã_i),  ã_i = a_τ + σ̃_τ ε_i   (MC score target)
       S = mean (φθ(s, a_τ, τ) − φ*)²                                    (score matching)
   and one Adam step on the policy with  J + 0.1 S. E is the augmented Lagrangian
       L_A = −Q + ([λ + ρ(Q̄c − h)]₊² − λ²) / (2ρ),  Q = min(Q1, Q2),  Q̄c = mean + k·std,
   or the plain Lagrangian −Q + λ(Q̄c − h) for the LGD ablation. Critics and λ are constants here.
3. **Multiplier** (spec §4.1): λ = exp(ℓ); Adam on ℓ with loss λ · (h − mean_b Q̄c(s_b, a_b)) on
   replay actions (or the projected rule, see :mod:`algd.lagrangian.multiplier`).
4. **Targets** (spec §3.4): Polyak averaging with rate τ every ``target_update_every`` updates.

Deliberate differences from the reference code are listed in ``docs/reference_differences.md``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from algd.algos.base import Agent, EnvInfo, adam, polyak_update
from algd.algos.td import critic_td_step
from algd.buffers.replay import Batch
from algd.config import ConfigError, documented, in_range, non_negative, positive
from algd.diffusion.policy import DiffusionPolicy
from algd.diffusion.score_target import mc_score_target
from algd.lagrangian.energy import EnergyKind, energy, ucb_cost
from algd.lagrangian.multiplier import Multiplier, MultiplierRule, make_multiplier
from algd.nets.critics import CriticBank, CriticsAtStates
from algd.nets.optim import adam_step, set_grads


@documented
@dataclass
class ALGDConfig:
    """ALGD hyperparameters. Defaults are sized for the built-in task on a laptop CPU; the
    reference's values (spec §5) are in the ``paper`` preset.

    ρ defaults to 10, not the reference's 1: with the CAL dual rule λ decays towards 0 on
    PointDetour (most replayed states are far from the hazard, so the batch-mean Q̄c stays below
    h), and the constraint is then held by the quadratic term alone, whose equilibrium violation
    scales like |∇Q| / (ρ |∇Q̄c|). PointDetour's reward critic is ~10× larger than its cost
    critic; with ρ = 1 both variants drift over the limit after ~7000 steps (DDPM to 5–6 cost per
    episode by 9000), with ρ = 10 they learn the detour sooner and stay near or under it.
    """

    variant: Literal["vesde", "ddpm"] = "vesde"
    """diffusion variant: VE-SDE (score-driven chain) or DDPM (noise head + score guidance)"""
    energy: Literal["augmented", "lagrangian"] = "augmented"
    """guidance energy: augmented Lagrangian (ALGD) or plain Lagrangian (LGD ablation)"""
    diffusion_steps: int = 5
    """K, reverse diffusion steps"""
    policy_hidden: int = 64
    """width of the policy trunk (reference: 128)"""
    policy_layers: int = 3
    """layers of the policy trunk"""
    time_embedding_dim: int = 16
    """size of the learned time embedding"""
    critic_hidden: tuple[int, ...] = (64, 64)
    """hidden widths of every critic (reference: 256,256)"""
    cost_ensemble_size: int = 4
    """E, members of the cost-critic ensemble"""
    ucb_k: float = 1.0
    """k in the conservative cost estimate Q̄c = mean + k·std"""
    rho: float = 10.0
    """ρ, quadratic penalty of the augmented Lagrangian (reference: 1; 10 holds the built-in
    task's limit, see `help(ALGDConfig)`)"""
    temperature: float = 1.0
    """β, temperature of the Boltzmann policy exp(−E/β) behind the score target"""
    mc_samples: int = 4
    """N, Monte-Carlo samples of the score target"""
    score_sigma_scale: float = 1.0
    """multiplies the smoothing noise level σ̃_τ of the score target"""
    score_points: Literal["input", "output"] = "input"
    """train φθ(·, τ) at the action entering step τ (where it is queried) or after it (reference)"""
    actor_coef: float = 1.0
    """weight of the energy loss J"""
    score_coef: float = 0.1
    """weight of the score-matching loss S"""
    gamma: float = 0.99
    """reward discount γ"""
    cost_gamma: float = 0.99
    """cost discount γ_c"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    target_update_every: int = 2
    """soft-update the targets every this many gradient updates"""
    lr: float = 3e-4
    """Adam learning rate of the policy"""
    critic_lr: float = 3e-4
    """Adam learning rate of the reward and cost critics"""
    multiplier: MultiplierRule = "log-adam"
    """multiplier rule: log-adam (reference, CAL) or projected (λ ← [λ + η(Q̄c − h)]₊)"""
    lambda_init: float = 0.6931
    """initial λ"""
    lambda_lr: float = 3e-4
    """learning rate of the multiplier"""
    sigma_min: float = 0.01
    """VE-SDE: smallest noise level"""
    sigma_max: float = 1.0
    """VE-SDE: largest noise level (start of the chain)"""
    ddpm_beta_min: float = 1e-4
    """DDPM: first β of the linear schedule"""
    ddpm_beta_max: float = 0.02
    """DDPM: last β of the linear schedule"""
    guidance_scale: float = 0.05
    """DDPM: weight of the score-head guidance added to the posterior mean"""
    guidance_normalize: bool = True
    """DDPM: normalise the guidance vector to unit length"""

    def ignored_fields(self) -> list[str]:
        """Fields set away from their defaults that this config's variant does not read (the
        other variant's schedule and guidance): ``algd train`` names them in a note."""
        other = {"vesde": ("ddpm_beta_min", "ddpm_beta_max", "guidance_scale",
                           "guidance_normalize"),
                 "ddpm": ("sigma_min", "sigma_max")}[self.variant]
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return [name for name in other if getattr(self, name) != defaults[name]]

    def validate(self) -> None:
        positive(self, "diffusion_steps", "policy_hidden", "policy_layers", "time_embedding_dim",
                 "cost_ensemble_size", "rho", "temperature", "mc_samples", "score_sigma_scale",
                 "lr", "critic_lr", "lambda_lr", "target_update_every", "sigma_min", "sigma_max")
        non_negative(self, "ucb_k", "actor_coef", "score_coef", "lambda_init", "guidance_scale")
        in_range(self, "gamma", 0.0, 1.0, high_open=True)
        in_range(self, "cost_gamma", 0.0, 1.0, high_open=True)
        in_range(self, "tau", 0.0, 1.0, low_open=True)
        in_range(self, "ddpm_beta_min", 0.0, 1.0, low_open=True, high_open=True)
        in_range(self, "ddpm_beta_max", 0.0, 1.0, low_open=True, high_open=True)
        if not self.critic_hidden or any(h < 1 for h in self.critic_hidden):
            raise ConfigError(f"critic_hidden needs positive widths, got {self.critic_hidden}")
        if self.sigma_min > self.sigma_max:
            raise ConfigError(f"sigma_min ({self.sigma_min}) > sigma_max ({self.sigma_max})")
        if self.ddpm_beta_min > self.ddpm_beta_max:
            raise ConfigError("ddpm_beta_min must be <= ddpm_beta_max")
        if self.multiplier == "log-adam" and self.lambda_init <= 0:
            raise ConfigError("the log-adam multiplier needs lambda_init > 0")


class ALGD(Agent):
    """ALGD agent (both diffusion variants; with ``energy="lagrangian"`` it is the LGD ablation)."""

    diagnostics = ("critic_loss", "cost_critic_loss", "actor_loss", "score_loss", "q", "qc_ucb",
                   "violation")

    def __init__(self, env: EnvInfo, cfg: ALGDConfig, device: torch.device) -> None:
        super().__init__(env, device)
        self.cfg = cfg
        self.h = float(env.cost_threshold)
        self.energy_kind: EnergyKind = cfg.energy
        self.policy = DiffusionPolicy(
            env.obs_dim, env.act_dim, torch.as_tensor(env.action_low),
            torch.as_tensor(env.action_high), variant=cfg.variant, steps=cfg.diffusion_steps,
            hidden=cfg.policy_hidden, layers=cfg.policy_layers, time_dim=cfg.time_embedding_dim,
            sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, beta_min=cfg.ddpm_beta_min,
            beta_max=cfg.ddpm_beta_max, guidance_scale=cfg.guidance_scale,
            guidance_normalize=cfg.guidance_normalize,
        )
        self.critic = CriticBank(
            env.obs_dim, env.act_dim, tuple(cfg.critic_hidden), reward_members=2,
            cost_members=cfg.cost_ensemble_size,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.multiplier = self.build_multiplier(cfg)
        self.to(device)  # moves parameters in place: optimisers built earlier stay valid
        self.optimizers = {
            "critic": adam(self.critic.parameters(), cfg.critic_lr),
            "policy": adam(self.policy.parameters(), cfg.lr),
        }
        self._policy_params = list(self.policy.parameters())
        self.cost_mask_terminal = env.cost_mask_terminal

    @property
    def update_period(self) -> int:
        return self.cfg.target_update_every  # Polyak averaging is the only periodic branch

    def compile_targets(self) -> list[torch.nn.Module]:
        return [self.critic, self.critic_target]  # the critic bank holds ~90% of the FLOPs

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        batch, single = self.observation_batch(obs)
        action = self.policy.sample(batch, deterministic=deterministic).action
        return action[0] if single else action

    def build_multiplier(self, cfg: ALGDConfig) -> Multiplier:
        """The λ rule (``--multiplier``); a subclass overrides this to use its own
        :class:`~algd.lagrangian.multiplier.Multiplier`."""
        return make_multiplier(cfg.multiplier, cfg.lambda_init, cfg.lambda_lr)

    @property
    def lagrange_multiplier(self) -> Tensor:
        return self.multiplier.value

    # -- the energy -----------------------------------------------------------------------------
    def energy(self, obs: Tensor, act: Tensor, lam: Tensor,
               critics: CriticsAtStates | None = None) -> Tensor:
        """E(s, a) from the online critics: L_A (ALGD) or L (LGD), spec §2.4. Shape = obs.shape[:-1].

        The critics enter as a fixed function (differentiable in ``act`` and ``obs`` only): the
        policy step never takes their parameter gradients. The policy step passes ``critics``,
        the bank at its batch states (``obs`` is those states, or them repeated over leading
        sample dims), so that J's action and the N score-target samples share the state half of
        the critics' first layer; the states are then read from ``critics``, not from ``obs``
        (an override of this method may ignore ``critics`` and use ``obs``).
        """
        q, qc = self.critic(obs, act, frozen=True) if critics is None else critics(act)
        return energy(self.energy_kind, q.min(0).values, ucb_cost(qc, self.cfg.ucb_k), lam,
                      self.h, self.cfg.rho)

    # -- one gradient update --------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, Tensor]:
        """Critics → policy → multiplier → targets, in the reference's order (spec §3.4)."""
        diag = self.gradient_step(batch)
        if self.num_updates % self.cfg.target_update_every == 0:
            polyak_update(self.critic_target, self.critic, self.cfg.tau)
        self.num_updates += 1
        self.compile_step_when_ready()
        return diag

    def gradient_step(self, batch: Batch) -> dict[str, Tensor]:
        """Steps 1–3: critics, policy, multiplier (one graph when compiled on a CPU)."""
        diag = self.update_critics(batch)
        diag |= self.update_policy(batch)
        diag |= self.update_multiplier(batch)
        return diag

    def update_critics(self, batch: Batch) -> dict[str, Tensor]:
        """1. TD step of the twin reward critic and the cost ensemble (spec §3.1, §3.2)."""
        with torch.no_grad():
            next_act = self.policy.sample(batch.next_obs).action  # stochastic chain, no entropy
        return critic_td_step(
            self.critic, self.critic_target, self.optimizers["critic"], batch, next_act,
            gamma=self.cfg.gamma, cost_gamma=self.cfg.cost_gamma,
            cost_mask_terminal=self.cost_mask_terminal,
        )

    def update_policy(self, batch: Batch) -> dict[str, Tensor]:
        """2. Energy loss through the chain + MC score matching (spec §2.5, §2.6): one Adam step
        of the policy."""
        grads, diag = self.policy_gradients(batch)
        # gradients for the policy only: critics' .grad stay untouched (VE leaves eps_head unused)
        set_grads(self._policy_params, grads)
        adam_step(self.optimizers["policy"])
        return diag

    def policy_gradients(self, batch: Batch) -> tuple[tuple[Tensor | None, ...], dict[str, Tensor]]:
        """The policy loss ``actor_coef · J + score_coef · S`` (spec §2.5, §2.6), differentiated
        in the policy's parameters; returns the gradients and detached diagnostics.

        Nothing that still records a graph leaves this function, so ``torch.compile`` traces it,
        the score target's ``requires_grad_`` included, into the update's one graph (anything
        carrying autograd state out of it would split the graph at the score target)."""
        cfg, obs = self.cfg, batch.obs
        lam = self.multiplier.value  # a constant for the policy
        chain = self.policy.sample(obs, record=True)
        rows = torch.arange(obs.shape[0], device=obs.device)
        tau = torch.randint(self.policy.steps, (obs.shape[0],), device=obs.device)
        a_tau = chain.step_points(cfg.score_points)[tau, rows]  # not detached (reference)

        # the critics at the batch states: the state half of their first layer once, for J's
        # action and the N samples of φ* (CriticsAtStates)
        critics = self.critic.at_states(obs)
        actor_loss = self.energy(obs, chain.action, lam, critics).mean()  # J
        obs_n = obs.unsqueeze(0).expand(cfg.mc_samples, *obs.shape)
        phi_target = mc_score_target(  # φ*, detached
            lambda y: self.energy(obs_n, y, lam, critics), a_tau,
            cfg.score_sigma_scale * self.policy.mc_sigma(tau), cfg.mc_samples, cfg.temperature,
        )
        score_loss = (self.policy.score(obs, a_tau, tau) - phi_target).square().mean()  # S
        loss = cfg.actor_coef * actor_loss + cfg.score_coef * score_loss

        grads = torch.autograd.grad(loss, self._policy_params, allow_unused=True)
        return grads, {"actor_loss": actor_loss.detach(), "score_loss": score_loss.detach()}

    def update_multiplier(self, batch: Batch) -> dict[str, Tensor]:
        """3. Dual step on the conservative cost of the replay actions (spec §4.1)."""
        with torch.no_grad():  # Q̄c = mean + k·std of the cost ensemble at the replay pairs
            qc_buffer = ucb_cost(self.critic.cost(batch.obs, batch.act), self.cfg.ucb_k)
        self.multiplier.update(qc_buffer.mean(), self.h)
        return {"qc_ucb": qc_buffer.mean(),
                "violation": (qc_buffer - self.h).clamp_min(0.0).mean()}
