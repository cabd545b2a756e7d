"""The SAC primal-dual family: SAC-Lag, SAC-AugLag and CAL (spec §7.1).

The three baselines of the paper are one algorithm with three settings, exactly as in the
authors' code (the CAL repository's ``agent/cal.py``, of which the ALGD authors' ``saclag``,
``sacauglag`` and ``cal`` agents are copies differing only in their configs):

    ============  ==========================  =======================  ==============
    name          cost critic                 actor's cost weight      registry entry
    ============  ==========================  =======================  ==============
    SAC-Lag       one critic (E = 1, k = 0)   λ                        ``sac-lag``
    SAC-AugLag    one critic (E = 1, k = 0)   AL-rectified, c = 10     ``sac-auglag``
    CAL           UCB ensemble (E = 4, k = 1) AL-rectified, c = 10     ``cal``
    ============  ==========================  =======================  ==============

So they live in this one module, and the registry entries name the settings. Read top to
bottom, one gradient update does, in the reference's order:

1. **Critics** (spec §3.1–3.2 plus SAC's soft value). a' ~ π(·|s'):
       y_r   = r + γ (1 − d) [ min_i Q'_i(s', a') − α log π(a'|s') ]
       y_c,e = c + γ_c m_c Qc'_e(s', a')
   one Adam step on the critic bank (:func:`algd.algos.td.critic_td_step`).
2. **Actor** (CAL's policy loss: Wu et al., ICLR 2024, arXiv 2401.14758, "local policy
   convexification"; as implemented in ``ZifanWu/CAL`` ``agent/cal.py``). a ~ π(·|s)
   reparameterised, Q̄c = mean_e Qc_e + k · std_e Qc_e (:func:`~algd.lagrangian.ucb_cost`):
       w = λ − min(λ, c · mean_b(h − Q̄c(s_b, a_b)))      (replay actions a_b; w = λ when c = 0)
       J = mean_b [ α log π(a|s) − min_i Q_i(s, a) + w · Q̄c(s, a) ]
   one Adam step on the actor only (:func:`~algd.lagrangian.al_cost_weight`).
3. **Temperature** (SAC, Haarnoja et al. 2018): α is the multiplier of the entropy constraint
   E[−log π] ≥ H̄ with H̄ = −|A|; the same log-parameterised Adam dual step as λ
   (:class:`~algd.lagrangian.LogMultiplier`): loss α · mean(−log π − H̄).
4. **Multiplier** (spec §4.1): Adam on log λ with loss λ · (h − mean_b Q̄c(s_b, a_b)).
5. **Targets**: Polyak averaging with rate τ every ``target_update_every`` updates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from algd.algos.base import Agent, EnvInfo, adam, polyak_update
from algd.algos.td import critic_td_step
from algd.buffers.replay import Batch
from algd.config import ConfigError, documented, in_range, non_negative, positive
from algd.lagrangian.energy import ucb_cost
from algd.lagrangian.multiplier import (
    LogMultiplier,
    Multiplier,
    MultiplierRule,
    make_multiplier,
)
from algd.lagrangian.rectification import al_cost_weight
from algd.nets.critics import CriticBank
from algd.nets.optim import adam_step, set_grads
from algd.nets.tanh_gaussian import TanhGaussianActor


@documented
@dataclass
class SACLagConfig:
    """Hyperparameters of the SAC primal-dual family. Defaults are SAC-Lag sized for the built-in
    task on a laptop CPU; the registry entries set E, k and c, the ``paper`` preset the sizes."""

    actor_hidden: tuple[int, ...] = (64, 64)
    """hidden widths of the tanh-Gaussian actor (reference: 256,256)"""
    critic_hidden: tuple[int, ...] = (64, 64)
    """hidden widths of every critic (reference: 256,256)"""
    cost_ensemble_size: int = 1
    """E, members of the cost-critic ensemble (SAC-Lag/AugLag: 1, CAL: 4)"""
    ucb_k: float = 0.0
    """k in the conservative cost estimate Q̄c = mean + k·std (SAC-Lag/AugLag: 0, CAL: 1)"""
    convexity: float = 0.0
    """c, CAL's convexity parameter: actor cost weight λ − min(λ, c·mean(h − Q̄c(s, a_buffer)));
    0 = plain λ (SAC-Lag), 10 = SAC-AugLag and CAL"""
    gamma: float = 0.99
    """reward discount γ"""
    cost_gamma: float = 0.99
    """cost discount γ_c"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    target_update_every: int = 2
    """soft-update the targets every this many gradient updates"""
    lr: float = 3e-4
    """Adam learning rate of the actor"""
    critic_lr: float = 3e-4
    """Adam learning rate of the reward and cost critics"""
    alpha_init: float = 1.0
    """initial entropy temperature α (reference: log α = 0)"""
    alpha_lr: float = 3e-3
    """Adam learning rate of log α (reference: 3e-4 at 10 updates per env step; 3e-3 keeps that
    pace per env step at the default 1)"""
    target_entropy: float | None = None
    """entropy target H̄ of the temperature update (default: −|A|)"""
    multiplier: MultiplierRule = "log-adam"
    """multiplier rule: log-adam (reference, CAL) or projected (λ ← [λ + η(Q̄c − h)]₊)"""
    lambda_init: float = 0.6931
    """initial λ"""
    lambda_lr: float = 3e-4
    """learning rate of the multiplier"""

    def validate(self) -> None:
        positive(self, "cost_ensemble_size", "lr", "critic_lr", "alpha_init", "alpha_lr",
                 "lambda_lr", "target_update_every")
        non_negative(self, "ucb_k", "convexity", "lambda_init")
        in_range(self, "gamma", 0.0, 1.0, high_open=True)
        in_range(self, "cost_gamma", 0.0, 1.0, high_open=True)
        in_range(self, "tau", 0.0, 1.0, low_open=True)
        for name in ("actor_hidden", "critic_hidden"):
            widths = getattr(self, name)
            if not widths or any(h < 1 for h in widths):
                raise ConfigError(f"{name} needs positive widths, got {widths}")
        if self.multiplier == "log-adam" and self.lambda_init <= 0:
            raise ConfigError("the log-adam multiplier needs lambda_init > 0")


class SACLag(Agent):
    """SAC with a cost critic (ensemble) and a Lagrange multiplier; CAL's rectification when
    ``convexity > 0``. See the module docstring for the update."""

    diagnostics = ("critic_loss", "cost_critic_loss", "actor_loss", "q", "qc_ucb", "violation",
                   "alpha", "entropy", "cost_weight")

    def __init__(self, env: EnvInfo, cfg: SACLagConfig, device: torch.device) -> None:
        super().__init__(env, device)
        self.cfg = cfg
        self.h = float(env.cost_threshold)
        self.actor = TanhGaussianActor(env.obs_dim, env.act_dim, torch.as_tensor(env.action_low),
                                       torch.as_tensor(env.action_high), tuple(cfg.actor_hidden))
        self.critic = CriticBank(env.obs_dim, env.act_dim, tuple(cfg.critic_hidden),
                                 reward_members=2, cost_members=cfg.cost_ensemble_size)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.multiplier = self.build_multiplier(cfg)
        self.temperature = LogMultiplier(cfg.alpha_init, cfg.alpha_lr)  # α = exp(log α)
        self.target_entropy = (-float(env.act_dim) if cfg.target_entropy is None
                               else float(cfg.target_entropy))
        self.to(device)  # moves parameters in place: optimisers built earlier stay valid
        self.optimizers = {
            "critic": adam(self.critic.parameters(), cfg.critic_lr),
            "actor": adam(self.actor.parameters(), cfg.lr),
        }
        self._actor_params = list(self.actor.parameters())
        self.cost_mask_terminal = env.cost_mask_terminal

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        batch, single = self.observation_batch(obs)
        action = self.actor.sample(batch, deterministic=deterministic).action
        return action[0] if single else action

    @property
    def update_period(self) -> int:
        return self.cfg.target_update_every  # Polyak averaging is the only periodic branch

    def build_multiplier(self, cfg: SACLagConfig) -> Multiplier:
        """The λ rule (``--multiplier``); a subclass overrides this to use its own
        :class:`~algd.lagrangian.multiplier.Multiplier`."""
        return make_multiplier(cfg.multiplier, cfg.lambda_init, cfg.lambda_lr)

    @property
    def lagrange_multiplier(self) -> Tensor:
        return self.multiplier.value

    @property
    def alpha(self) -> Tensor:
        """The entropy temperature α (0-dim, detached)."""
        return self.temperature.value

    # -- one gradient update --------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, Tensor]:
        """Critics → actor → temperature → multiplier → targets (the reference's order)."""
        diag = self.gradient_step(batch)
        if self.num_updates % self.cfg.target_update_every == 0:
            polyak_update(self.critic_target, self.critic, self.cfg.tau)
        self.num_updates += 1
        self.compile_step_when_ready()
        return diag

    def gradient_step(self, batch: Batch) -> dict[str, Tensor]:
        """Critics, then the actor with α and λ (one graph when compiled on a CPU)."""
        diag = self.update_critics(batch)
        diag |= self.update_actor(batch)  # also steps α and λ, which need the actor's batch
        return diag

    def update_critics(self, batch: Batch) -> dict[str, Tensor]:
        """1. Soft TD step of the twin reward critic and the cost critic(s)."""
        with torch.no_grad():
            next_act, next_log_prob = self.actor.sample(batch.next_obs)
        return critic_td_step(
            self.critic, self.critic_target, self.optimizers["critic"], batch, next_act,
            gamma=self.cfg.gamma, cost_gamma=self.cfg.cost_gamma,
            cost_mask_terminal=self.cost_mask_terminal, next_bonus=-self.alpha * next_log_prob,
        )

    def update_actor(self, batch: Batch) -> dict[str, Tensor]:
        """2.–4. Actor step with the (rectified) cost weight, then α and λ dual steps."""
        cfg, obs = self.cfg, batch.obs
        lam, alpha = self.multiplier.value, self.alpha  # constants for the actor
        with torch.no_grad():  # conservative cost of the replay actions: drives w and λ
            qc_buffer = ucb_cost(self.critic.cost(obs, batch.act), cfg.ucb_k)
        weight = al_cost_weight(lam, qc_buffer.mean(), self.h, cfg.convexity)

        action, log_prob = self.actor.sample(obs)
        q, qc = self.critic(obs, action, frozen=True)  # gradients to the action only
        actor_loss = (alpha * log_prob - q.min(0).values
                      + weight * ucb_cost(qc, cfg.ucb_k)).mean()
        log_prob_mean = log_prob.detach().mean()
        diag = {"actor_loss": actor_loss.detach(), "alpha": alpha, "entropy": -log_prob_mean,
                "cost_weight": weight, "qc_ucb": qc_buffer.mean(),
                "violation": (qc_buffer - self.h).clamp_min(0.0).mean()}
        # gradients for the actor only: the critics' .grad stay untouched (nothing that records
        # a graph outlives autograd.grad, so a compiled update traces it without a break)
        set_grads(self._actor_params, torch.autograd.grad(actor_loss, self._actor_params))
        adam_step(self.optimizers["actor"])

        # α: multiplier of E[log π] ≤ −H̄ (entropy ≥ H̄); loss α · mean(−log π − H̄)
        self.temperature.update(log_prob_mean, -self.target_entropy)
        self.multiplier.update(qc_buffer.mean(), self.h)
        return diag
