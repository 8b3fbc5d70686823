"""How much does a K-FAC (ACKTR) update cost over a first-order (A2C) update?

Times, on the same batch and in one run with interleaved repetitions (median times), a first-order
update (forward, backward, optimizer step) and a K-FAC update (the same, plus the Fisher pass
statistics, preconditioning, the inverse amortized over ``inverse_every`` and the trust-region
scaling; SGD with momentum in both, so the ratio measures K-FAC alone), each on its own copy of the
model with the same initial weights. A third side is K-FAC with its statistics on every k-th sample
(``--stats-subsample k``, default 8; 1 leaves it out), each Fisher pass on its own forward of those
rows as ACKTR does; ``--stats-every Ts`` amortizes the Fisher pass over Ts updates (ACKTR: 1).

Models: the MuJoCo-size actor and critic (separate 64-64 tanh MLPs, obs 17 → 6 actions, batch 2500,
two K-FAC objects) and the Atari-size Nature CNN with a shared trunk (4×84×84, 6 actions, one K-FAC
object, joint Fisher), batch 80 and 640. Targets printed beside the ratios: <= 1.15 (MLP) and
<= 1.30 (CNN). The paper's Table 3 (data/acktr_table3_timesteps_per_second.csv) times whole training
on a GPU, a different (smaller) ratio. Each side in detail: benchmarks/README.md; the committed
output: data/benchmarks/kfac_overhead.txt.

    python benchmarks/kfac_overhead.py                 # CPU, default repeats
    python benchmarks/kfac_overhead.py --device cuda
    python benchmarks/kfac_overhead.py --quick         # tiny smoke run (seconds)
    python benchmarks/kfac_overhead.py --stats-every 5 --repeats 10
    python benchmarks/kfac_overhead.py --stats-subsample 1   # the full-batch K-FAC only

This is a benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn as nn

from rlkit.critic import categorical_fisher_loss, gaussian_fisher_loss, joint_fisher_loss, value_fisher_loss
from rlkit.kfac import KFAC
from rlkit.nets import NatureCNN, mlp

DELTA, ETA_MAX = 0.01, 0.25  # trust region (paper convention: eta = min(eta_max, sqrt(2 delta / q)))


def eta(quad: float) -> float:
    return min(ETA_MAX, math.sqrt(2 * DELTA / quad)) if quad > 0 else ETA_MAX


class Clock:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.t = 0.0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.t = time.perf_counter()

    def lap(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        return dt


# --------------------------------------------------------------------------- workloads


class Side:
    """One model with its optimizer (and, on the K-FAC side, its K-FAC objects)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.params = list(model.parameters())
        self.opt = torch.optim.SGD(self.params, lr=1e-3, momentum=0.9)
        self.kfacs: list[KFAC] = []


class MujocoWorkload:
    """Separate actor and critic (ACKTR on MuJoCo): two K-FAC objects, two trust regions."""

    name = "MLP 64-64 tanh (MuJoCo)"
    target = 1.15

    def __init__(self, batch: int, device: torch.device, inverse_every: int, subsamples: list[int]):
        g = torch.Generator(device="cpu").manual_seed(0)
        self.obs = torch.randn(batch, 17, generator=g).to(device)
        self.actions = torch.randn(batch, 6, generator=g).to(device)
        self.adv = torch.randn(batch, generator=g).to(device)
        self.ret = torch.randn(batch, generator=g).to(device)
        # identical models: the first-order side carries no K-FAC hooks at all
        self.fo = Side(self.build().to(device))
        self.kf = {k: Side(self.build().to(device)) for k in subsamples}
        for k, side in self.kf.items():
            side.model.load_state_dict(self.fo.model.state_dict())
            actor, critic = side.model.actor, side.model.critic
            # the log-std belongs to no layer: its exact Fisher block is 2·I
            side.kfacs = [KFAC(actor, inverse_every=inverse_every, stats_subsample=k,
                               exact_diagonal_blocks={actor.log_std: 2.0}),
                          KFAC(critic, inverse_every=inverse_every, stats_subsample=k)]

    @staticmethod
    def build() -> nn.Module:
        actor = nn.Module()
        actor.mean = mlp([17, 64, 64, 6])
        actor.log_std = nn.Parameter(torch.zeros(6))
        return nn.ModuleDict({"actor": actor, "critic": mlp([17, 64, 64, 1])})

    def forward(self, side: Side):
        m = side.model
        return m.actor.mean(self.obs), m.actor.log_std, m.critic(self.obs).squeeze(-1)

    def loss(self, out):
        mean, log_std, v = out
        logp = (-((self.actions - mean) / log_std.exp()) ** 2 / 2 - log_std).sum(-1)
        return -(logp * self.adv).mean() + 0.5 * (v - self.ret).pow(2).mean()

    def fisher(self, side: Side, out):
        mean, log_std, v = out
        k_actor, k_critic = side.kfacs
        k_actor.update_stats(gaussian_fisher_loss(mean, log_std))
        k_critic.update_stats(value_fisher_loss(v))

    def fisher_on_rows(self, side: Side):
        k_actor, k_critic = side.kfacs
        actor, critic = side.model.actor, side.model.critic
        mean = actor.mean(self.obs[k_actor.stats_rows(len(self.obs))])
        k_actor.update_stats(gaussian_fisher_loss(mean, actor.log_std), retain_graph=False, presampled=True)
        v = critic(self.obs[k_critic.stats_rows(len(self.obs))]).squeeze(-1)
        k_critic.update_stats(value_fisher_loss(v), retain_graph=False, presampled=True)

    def precondition(self, side: Side):
        k_actor, k_critic = side.kfacs
        qa = k_actor.precondition(update_inverses=False)
        qc = k_critic.precondition(update_inverses=False)
        # two trust regions: scale the actor's and the critic's directions separately
        with torch.no_grad():
            for p in side.model.actor.parameters():
                p.grad.mul_(eta(qa))
            for p in side.model.critic.parameters():
                p.grad.mul_(eta(qc))


class AtariWorkload:
    """Nature CNN, shared trunk (ACKTR on Atari): one K-FAC object, joint Fisher."""

    target = 1.30

    def __init__(self, batch: int, device: torch.device, inverse_every: int, subsamples: list[int]):
        self.name = f"Nature CNN (Atari) b={batch}"
        g = torch.Generator(device="cpu").manual_seed(0)
        self.obs = torch.randint(0, 256, (batch, 4, 84, 84), generator=g, dtype=torch.uint8).to(device)
        self.actions = torch.randint(0, 6, (batch,), generator=g).to(device)
        self.adv = torch.randn(batch, generator=g).to(device)
        self.ret = torch.randn(batch, generator=g).to(device)
        self.fo = Side(self.build().to(device))
        self.kf = {k: Side(self.build().to(device)) for k in subsamples}
        for k, side in self.kf.items():
            side.model.load_state_dict(self.fo.model.state_dict())
            side.kfacs = [KFAC(side.model, inverse_every=inverse_every, stats_subsample=k)]

    @staticmethod
    def build() -> nn.Module:
        return nn.ModuleDict({"trunk": NatureCNN(), "pi": nn.Linear(512, 6), "v": nn.Linear(512, 1)})

    def forward(self, side: Side):
        m = side.model
        h = m.trunk(self.obs)
        return m.pi(h), m.v(h).squeeze(-1)

    def loss(self, out):
        logits, v = out
        logp_all = torch.log_softmax(logits, -1)
        logp = logp_all.gather(1, self.actions[:, None]).squeeze(1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        return -(logp * self.adv).mean() + 0.5 * (v - self.ret).pow(2).mean() - 0.01 * entropy

    def fisher(self, side: Side, out):
        logits, v = out
        side.kfacs[0].update_stats(joint_fisher_loss(categorical_fisher_loss(logits), value_fisher_loss(v)))

    def fisher_on_rows(self, side: Side):
        kfac, m = side.kfacs[0], side.model
        h = m.trunk(self.obs[kfac.stats_rows(len(self.obs))])
        kfac.update_stats(joint_fisher_loss(categorical_fisher_loss(m.pi(h)), value_fisher_loss(m.v(h).squeeze(-1))),
                          retain_graph=False, presampled=True)

    def precondition(self, side: Side):
        q = side.kfacs[0].precondition(update_inverses=False)
        with torch.no_grad():
            for p in side.params:
                p.grad.mul_(eta(q))


# --------------------------------------------------------------------------- timing


def first_order_update(w, side: Side, clock: Clock) -> dict[str, float]:
    clock.start()
    out = w.forward(side)
    t_fwd = clock.lap()
    side.opt.zero_grad(set_to_none=False)
    w.loss(out).backward()
    t_bwd = clock.lap()
    side.opt.step()
    t_step = clock.lap()
    return {"forward": t_fwd, "backward": t_bwd, "step": t_step}


def kfac_update(w, side: Side, clock: Clock) -> dict[str, float]:
    clock.start()
    on_rows = side.kfacs[0].stats_subsample > 1
    if on_rows:  # as ACKTR: each Fisher pass on its own forward of its rows, before the loss's forward
        w.fisher_on_rows(side)
        t_stats = clock.lap()
    out = w.forward(side)
    t_fwd = clock.lap()
    if not on_rows:  # the Fisher pass shares the loss's forward
        w.fisher(side, out)
        t_stats = clock.lap()
    side.opt.zero_grad(set_to_none=False)
    w.loss(out).backward()
    t_bwd = clock.lap()
    for k in side.kfacs:  # timed on its own, amortized over inverse_every in measure()
        k.update_inverses()
    t_inv = clock.lap()
    w.precondition(side)
    t_pre = clock.lap()
    side.opt.step()
    t_step = clock.lap()
    return {"forward": t_fwd, "stats": t_stats, "backward": t_bwd, "inverse": t_inv, "precondition": t_pre,
            "step": t_step}


def measure(w, repeats: int, warmup: int, clock: Clock, ts: int, tf: int) -> dict:
    """Interleaved repetitions (the order of the updates rotates every repetition); medians.

    Returns ``{"first-order": ..., k: ...}`` for each K-FAC side (k = its stats_subsample),
    each ``{"pieces": {piece: median s}, "total": median s}``. Every K-FAC repetition runs
    every piece; the Fisher pass counts 1/Ts and the inverse 1/Tf of its time in the
    per-update total (amortized over their periods).
    """
    sides = [("first-order", first_order_update, w.fo)] + [(k, kfac_update, side) for k, side in w.kf.items()]
    rows: dict = {label: [] for label, _, _ in sides}
    for r in range(warmup + repeats):
        shift = r % len(sides)
        for label, fn, side in sides[shift:] + sides[:shift]:
            t = fn(w, side, clock)
            if r >= warmup:
                rows[label].append(t)
    for label, _, _ in sides[1:]:
        for row in rows[label]:
            row["stats"] /= ts
            row["inverse"] /= tf
    med = lambda rs: {k: statistics.median(row[k] for row in rs) for k in rs[0]}  # noqa: E731
    total = lambda rs: statistics.median(sum(row.values()) for row in rs)  # noqa: E731
    return {label: {"pieces": med(rs), "total": total(rs)} for label, rs in rows.items()}


def kfac_label(k: int) -> str:
    return "K-FAC" if k == 1 else f"K-FAC 1/{k}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=None, help="timed repetitions per workload (default: 50 MLP, "
                    "30 CNN b=80, 12 CNN b=640)")
    ap.add_argument("--inverse-every", type=int, default=10, help="Tf: the inverse is amortized over it")
    ap.add_argument("--stats-every", type=int, default=1, help="Ts: the Fisher pass is amortized over it "
                    "(ACKTR: 1)")
    ap.add_argument("--stats-subsample", type=int, default=8, help="k: also time K-FAC with its statistics on "
                    "every k-th sample (KFAC(stats_subsample=k)); 1: the full-batch K-FAC only")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: small batches, 2 repeats")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = Clock(device)
    tf, ts = args.inverse_every, args.stats_every
    if args.stats_subsample < 1:
        ap.error(f"--stats-subsample must be an integer >= 1; got {args.stats_subsample}")
    subsamples = [1] if args.stats_subsample == 1 else [1, args.stats_subsample]
    if args.quick:
        plan = [(MujocoWorkload, 64, 2), (AtariWorkload, 4, 2)]
        warmup = 1
    else:
        r = args.repeats
        plan = [(MujocoWorkload, 2500, r or 50), (AtariWorkload, 80, r or 30), (AtariWorkload, 640, r or 12)]
        warmup = 2
    print(f"device={device}  threads={torch.get_num_threads()}  torch={torch.__version__}  "
          f"inverse_every={tf}  stats_every={ts}  stats_subsample={','.join(map(str, subsamples))}  "
          f"damping_mode=factored (cholesky)")
    print(f"{'workload':32s} {'first-order':>12s}" + "".join(f"{kfac_label(k):>11s} {'ratio':>6s}" for k in subsamples)
          + f" {'target':>7s}")
    details = []
    for cls, batch, repeats in plan:
        torch.manual_seed(0)
        w = cls(batch, device, tf, subsamples)
        result = measure(w, repeats, warmup, clock, ts, tf)
        fo = result["first-order"]["total"]
        cells = "".join(f"{result[k]['total'] * 1e3:9.1f}ms {result[k]['total'] / fo:5.2f}x" for k in subsamples)
        print(f"{w.name:32s} {fo * 1e3:10.1f}ms{cells} {w.target:6.2f}x")
        details.append((w.name, result))
    print("\nwhere the time goes (median ms per update; stats = Fisher pass, its time / Ts; inverse = its time / Tf):")
    hdr = ["forward", "backward", "step", "stats", "precondition", "inverse/Tf"]
    print(f"{'workload':32s} {'':12s}" + "".join(f"{h:>13s}" for h in hdr))
    for name, result in details:
        p = result["first-order"]["pieces"]
        print(f"{name:32s} {'first-order':12s}" + "".join(f"{p.get(h, 0) * 1e3:13.2f}" if h in p else f"{'':13s}"
                                                            for h in hdr))
        for k in subsamples:
            q = dict(result[k]["pieces"])
            q["inverse/Tf"] = q.pop("inverse")
            print(f"{'':32s} {kfac_label(k):12s}" + "".join(f"{q[h] * 1e3:13.2f}" for h in hdr))


if __name__ == "__main__":
    main()
