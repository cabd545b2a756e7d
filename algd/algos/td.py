"""The temporal-difference step of the critic bank, shared by every actor-critic algorithm.

With a' drawn from the current policy at s' by the caller (spec §3.1–3.2, CAL's critic update):

    y_r   = r + γ (1 − d) [ min_i Q'_i(s', a') + bonus ]          (twin reward target)
    y_c,e = c + γ_c m_c Qc'_e(s', a')   for every cost member e  (own target member)

and one Adam step on ``Σ_i MSE(Q_i, y_r) + mean_e MSE(Qc_e, y_c,e)``. ``bonus`` is SAC's soft
value term ``−α log π(a'|s')`` (none for ALGD, which has no entropy term, spec §2.7).
``m_c = 1 − d``, or 1 for tasks whose cost critic bootstraps through terminals (spec §1.5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from algd.buffers.replay import Batch
from algd.nets.critics import CriticBank
from algd.nets.optim import adam_step, set_grads


def critic_td_step(
    critic: CriticBank,
    critic_target: CriticBank,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    next_act: Tensor,
    *,
    gamma: float,
    cost_gamma: float,
    cost_mask_terminal: bool,
    next_bonus: Tensor | None = None,
) -> dict[str, Tensor]:
    """One TD update of the reward critics and the cost ensemble; returns detached diagnostics.

    Args:
        critic, critic_target: the online bank (stepped) and its target copy.
        optimizer: the online bank's optimiser.
        batch: the replay minibatch.
        next_act: a' ~ π(·|s') [B, A] (no gradient needed).
        gamma, cost_gamma: reward and cost discounts.
        cost_mask_terminal: whether the cost target stops at terminal states.
        next_bonus: [B] added to min_i Q'_i(s', a') in the reward target (SAC: −α log π(a'|s')).
    """
    with torch.no_grad():
        q_next, qc_next = critic_target(batch.next_obs, next_act)
        v_next = q_next.min(0).values
        if next_bonus is not None:
            v_next = v_next + next_bonus
        not_done = 1.0 - batch.terminated
        cost_mask = not_done if cost_mask_terminal else torch.ones_like(not_done)
        y_r = batch.reward + gamma * not_done * v_next
        y_c = batch.cost + cost_gamma * cost_mask * qc_next  # [E, B]: own target member
    q, qc = critic(batch.obs, batch.act)
    reward_loss = (q - y_r).square().mean(1).sum()
    cost_loss = (qc - y_c).square().mean()
    diag = {"critic_loss": reward_loss.detach(), "cost_critic_loss": cost_loss.detach(),
            "q": q.detach().mean()}
    # autograd.grad, not backward(): torch.compile traces it (one graph for a compiled update)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    set_grads(params, torch.autograd.grad(reward_loss + cost_loss, params, allow_unused=True))
    adam_step(optimizer)
    return diag
