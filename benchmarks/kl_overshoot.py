"""Why ACKTR's measured KL per update exceeds δ on MuJoCo: each approximation's share, measured.

ACKTR chooses η so that the predicted KL ½η² q equals δ, q = Δᵀ(F̂ + λI)Δ for Δ = (F̂ + λI)⁻¹g and
F̂ the K-FAC Fisher (running averages of the factors, decay ``stats_decay``); on the MuJoCo tasks
the KL it then measures, KL(π_old ‖ π_new) over the batch, is larger (data/benchmarks/kl_overshoot.txt).
This script trains ACKTR with its ``mujoco`` preset and, at every update, evaluates ½η² ΔᵀMΔ of the
very step ACKTR took for a chain of curvature matrices M, each one approximation closer to the
exact Fisher F:

    q / η-step      M = F̂ + λI      what ACKTR predicted (= δ unless η was capped by η_max)
    K-FAC, running  M = F̂           the same factors without the damping λ
    K-FAC, fresh    M = A ⊗ S       this batch's factors only (S exact over the Gaussian)
    block-diagonal  M = diag_l F_ll  the exact Fisher's layer blocks
    exact           M = F            the exact Fisher of the policy on the batch (``rlkit.fisher``)
    measured        KL(π_old ‖ π_new) after the step: beyond second order

The ratio of two neighbours is what one approximation costs; their product is measured / predicted
(each link: benchmarks/README.md). Printed per update (every ``--every``-th) and as medians over
the updates after the first, one column per ``--stats-decay``.

    python benchmarks/kl_overshoot.py                                   # Reacher-v5, 40 updates
    python benchmarks/kl_overshoot.py --env InvertedPendulum-v5 --updates 30
    python benchmarks/kl_overshoot.py --stats-decay 0.99 0.95 0.0 --quick

This is a benchmark (a measurement that prints), not a test.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch

from rlkit.agents.acktr import ACKTR
from rlkit.envs import EnvSummary, make_vec_env
from rlkit.fisher import DiagonalGaussian, fisher_vector_product, flatten, parameter_names
from rlkit.kfac import KFAC
from rlkit.rollout import RolloutCollector
from rlkit.experiments.runs import seed_everything
from rlkit.experiments.train import resolve_run_config

# the chain, from ACKTR's prediction to the measured KL (column names of the printed tables)
CHAIN = ["predicted", "kfac_running", "kfac_fresh", "block_diagonal", "exact", "measured"]
STEP_NAMES = {  # what the ratio of a link to the one before it measures
    "kfac_running": "damping removed",
    "kfac_fresh": "running average -> this batch's factors",
    "block_diagonal": "Kronecker factors -> exact layer blocks",
    "exact": "layer blocks -> whole Fisher (cross-layer terms)",
    "measured": "quadratic model -> actual KL",
}


def layer_quadratic(P: torch.Tensor, A: torch.Tensor, S: torch.Tensor) -> float:
    """vec(P)ᵀ (A ⊗ S) vec(P) = ⟨S P A, P⟩ for P = [ΔW | Δb] (d_out × d_in+1): the vec identity."""
    return float(((S @ P @ A) * P).sum())


def weight_bias_matrix(delta: dict[str, torch.Tensor], module_name: str, module: torch.nn.Linear) -> torch.Tensor:
    """[ΔW | Δb] of one Linear layer, the bias last (K-FAC's homogeneous coordinate)."""
    prefix = f"{module_name}." if module_name else ""
    W = delta[prefix + "weight"]
    if module.bias is None:
        return W
    return torch.cat([W, delta[prefix + "bias"].reshape(-1, 1)], dim=1)


def second_order_kls(before: torch.nn.Module, after: torch.nn.Module, step: dict[str, torch.Tensor],
                     obs: torch.Tensor, running: KFAC, q: float, eta: float) -> dict[str, float]:
    """The chain of KLs of one step θ_after = θ_before − η Δ of a Gaussian policy (module → mean,
    a ``log_std`` parameter), with ``step`` = Δ by parameter name, ``running`` the K-FAC whose
    factors chose it, ``q`` = Δᵀ(F̂ + λI)Δ its quadratic form, ``obs`` the batch's states.
    ``before`` must carry no K-FAC hooks (a copy made under ``KFAC.paused``)."""
    names = parameter_names(before)
    log_std_name = next(n for n in names if n.endswith("log_std"))
    dist = DiagonalGaussian(log_std=log_std_name)

    def quad(vec: torch.Tensor) -> float:
        return float(vec @ fisher_vector_product(before, obs, dist, vec))

    # exact and block-diagonal: Fisher-vector products with Δ and with Δ restricted to each block
    exact = quad(flatten({n: step[n] for n in names}))
    modules = dict(before.named_modules())
    blocks = [[n for n in names if n.rsplit(".", 1)[0] == m] for m, mod in modules.items()
              if isinstance(mod, torch.nn.Linear)] + [[log_std_name]]
    block_diagonal = sum(quad(flatten({n: step[n] if n in block else torch.zeros_like(step[n]) for n in names}))
                         for block in blocks)

    # K-FAC with this batch's factors, S as the exact expectation over the Gaussian (B Bᵀ = diag 1/σ²)
    fresh = KFAC(before, stats_decay=0.0, uncovered="zero")
    mean = before(obs)
    inv_sigma = torch.exp(-before.get_parameter(log_std_name)).detach()
    fresh.update_stats_exact([(mean, torch.diag_embed(inv_sigma.expand_as(mean)))], retain_graph=False)
    fresh.remove()
    log_std_term = 2.0 * float(step[log_std_name].pow(2).sum())  # its exact block, in every M
    kfac_fresh = kfac_running = log_std_term
    for name, layer in fresh.layers.items():
        P = weight_bias_matrix(step, name, modules[name])
        kfac_fresh += layer_quadratic(P, layer.A, layer.S)
        kfac_running += layer_quadratic(P, running.layers[name].A, running.layers[name].S)

    with torch.no_grad():  # the step's actual KL on the batch
        old = dist.torch_distribution(dist.outputs(before, dict(before.named_parameters()), obs))
        new = dist.torch_distribution(dist.outputs(after, dict(after.named_parameters()), obs))
        measured = float(torch.distributions.kl_divergence(old, new).mean())
    half_eta2 = 0.5 * eta * eta
    return {"eta": eta, "predicted": half_eta2 * q, "kfac_running": half_eta2 * kfac_running,
            "kfac_fresh": half_eta2 * kfac_fresh, "block_diagonal": half_eta2 * block_diagonal,
            "exact": half_eta2 * exact, "measured": measured}


class InstrumentedACKTR(ACKTR):
    """ACKTR that evaluates the chain on every actor step it takes (nothing else changes)."""

    records: list[dict]

    def batch(self, rollout):
        self.last_batch = super().batch(rollout)
        return self.last_batch

    def _trust_region_step(self, kfac: KFAC, parameters, delta: float, eta_max: float):
        if kfac is not getattr(self, "actor_kfac", None):
            return super()._trust_region_step(kfac, parameters, delta, eta_max)
        actor = self.model.actor
        with kfac.paused():  # a copy without K-FAC's hooks: the policy before the step
            before = copy.deepcopy(actor)
        q, eta = super()._trust_region_step(kfac, parameters, delta, eta_max)
        step = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                for n, p in actor.named_parameters()}  # Δ: .grad holds F̂⁻¹g after precondition
        with kfac.paused():
            self.records.append(second_order_kls(before, actor, step, self.last_batch.obs, kfac, q, eta))
        return q, eta


def run(env_id: str, updates: int, seed: int, stats_decay: float, num_steps: int | None) -> list[dict]:
    """Train ACKTR (the env's preset, ``stats_decay`` overridden) for ``updates`` updates; the records."""
    overrides = {"stats_decay": stats_decay}
    if num_steps is not None:
        overrides["num_steps"] = num_steps
    config, _ = resolve_run_config("acktr", env_id, overrides)
    if config.shared_trunk:
        raise SystemExit("kl_overshoot.py decomposes the separate actor's step; this preset shares the trunk")
    seed_everything(seed)
    envs = make_vec_env(env_id, config.num_envs)
    try:
        summary = EnvSummary.of(envs)
        if summary.action_kind != "continuous":
            raise SystemExit("kl_overshoot.py needs a Gaussian policy (a continuous-action env)")
        agent = InstrumentedACKTR(summary, config, seed=seed)
        agent.records = []
        collector = RolloutCollector(envs, config.num_steps, seed=seed)
        for _ in range(updates):
            with agent.acting():
                rollout = collector.collect(agent.policy)
            agent.update(rollout)
    finally:
        envs.close()
    return agent.records


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Reacher-v5", help="a continuous-action env (default %(default)s)")
    ap.add_argument("--updates", type=int, default=40, help="updates per run (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stats-decay", type=float, nargs="+", default=[0.99, 0.0],
                    help="one run per value (default: the preset's 0.99, and 0.0: this batch's factors only)")
    ap.add_argument("--every", type=int, default=5, help="print every N-th update (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 updates of 200 steps")
    args = ap.parse_args(argv)
    if args.updates < 2:
        ap.error(f"--updates must be >= 2; got {args.updates}")
    for decay in args.stats_decay:
        if not 0.0 <= decay < 1.0:
            ap.error(f"--stats-decay must be in [0, 1); got {decay}")
    torch.set_num_threads(args.threads)
    updates, num_steps = (3, 200) if args.quick else (args.updates, None)
    print(f"ACKTR ({args.env}, its preset), seed {args.seed}, {updates} updates; KL per update (nats), "
          "second-order KLs ½η²ΔᵀMΔ of the step taken")
    summary = {}
    for decay in args.stats_decay:
        t0 = time.perf_counter()
        records = run(args.env, updates, args.seed, decay, num_steps)
        print(f"\nstats_decay = {decay}  ({time.perf_counter() - t0:.0f} s)")
        print(f"{'update':>6} {'eta':>8} " + " ".join(f"{c:>14}" for c in CHAIN) + f" {'measured/pred':>14}")
        for i, r in enumerate(records):
            if i < 3 or i % args.every == 0 or i == len(records) - 1:
                print(f"{i:>6} {r['eta']:>8.4f} " + " ".join(f"{r[c]:>14.5f}" for c in CHAIN)
                      + f" {r['measured'] / r['predicted']:>14.2f}")
        later = records[1:]  # the first update starts from the initial policy: every M nearly agrees
        summary[decay] = {c: statistics.median(r[c] / r[p] for r in later) for p, c in zip(CHAIN, CHAIN[1:])}
        summary[decay]["total"] = statistics.median(r["measured"] / r["predicted"] for r in later)
    print(f"\nmedian over updates 1..{updates - 1} of the ratio of each link to the one before it:")
    print(f"{'link':<58}" + "".join(f"{'decay ' + str(d):>14}" for d in args.stats_decay))
    for c in CHAIN[1:]:
        print(f"{c + ': ' + STEP_NAMES[c]:<58}" + "".join(f"{summary[d][c]:>14.2f}" for d in args.stats_decay))
    print(f"{'measured / predicted (median of the per-update ratio)':<58}"
          + "".join(f"{summary[d]['total']:>14.2f}" for d in args.stats_decay))
    if not all(math.isfinite(v) for s in summary.values() for v in s.values()):
        raise SystemExit("a ratio is not finite (a zero or non-finite KL): the table above shows which")


if __name__ == "__main__":
    main()
