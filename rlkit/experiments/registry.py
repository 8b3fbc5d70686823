"""The papers' experiments, each declared once: environments, variants, hyperparameters, steps per scale.

An :class:`Experiment` names a table or figure of the papers (ACKTR: Wu et al. 2017; V-MPO: Song
et al. 2020) or one of the kit's precomputed sweeps. Its :meth:`Experiment.runs` expands a
**scale** into a grid of :class:`rlkit.experiments.grid.GridRun` (every env × variant × seed), which
``python -m rlkit reproduce`` (and ``sweep``) hands to :func:`rlkit.experiments.grid.run_grid`, and
``python -m rlkit report`` (:mod:`rlkit.experiments.report`) turns into the paper's table.

Scales
------
``smoke``: one or two updates per run, one seed, small batches: checks that the whole pipeline works
(the test suite runs every experiment at this scale, on both backends); its numbers mean nothing.
``laptop``: what a 2-core laptop affords in minutes to an hour or two, on the tasks that fit; the
committed results in ``data/reproductions/`` are this scale.
``paper``: the paper's tasks, steps and seeds, for a cluster (``--backend ray``).

Where a scale differs from the paper (fewer steps, other tasks, CartPole in place of an Atari game)
the experiment's ``notes`` say so, and the report prints them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from rlkit.experiments.grid import GridRun
from rlkit.experiments.runs import RunError

__all__ = ["Variant", "Scale", "Experiment", "EXPERIMENTS", "SWEEPS", "experiment", "SCALES"]

SCALES = ("smoke", "laptop", "paper")


@dataclass(frozen=True)
class Variant:
    """One compared method: an algorithm with hyperparameter overrides, shown as ``label``."""

    label: str
    algorithm: str
    overrides: tuple[tuple[str, Any], ...] = ()
    family: str | None = None  # run only on envs of this family ("atari", "mujoco", "classic"); None: on all


@dataclass(frozen=True)
class Scale:
    """How big a grid is: ``envs`` as ``((env id, env steps per run), ...)``, the default number of seeds,
    and ``overrides`` applied to every run of this scale, over the variant's own (the smoke scale's small
    batches: at that scale every run must be small, whatever it compares)."""

    envs: tuple[tuple[str, int], ...]
    seeds: int
    overrides: tuple[tuple[str, Any], ...] = ()
    only: tuple[str, ...] = ()  # run only these variant labels (the smoke scale of a big grid); (): all


@dataclass(frozen=True)
class Experiment:
    """A table or figure of a paper (or a sweep), declared once.

    ``kind`` decides the report: ``"returns"`` (final return and episodes/steps to ``thresholds``,
    beside the paper's ``paper_table`` when there is one), ``"throughput"`` (env steps per second,
    beside ACKTR Table 3), ``"sweep"`` (a hyperparameter grid, written as a compact table for the
    notebooks' sliders: ``axes`` are its dimensions).
    """

    name: str
    title: str
    source: str
    kind: str
    variants: tuple[Variant, ...]
    scales: dict[str, Scale]
    thresholds: dict[str, float] = field(default_factory=dict)
    window: int = 10  # episodes in the "mean return" of the report and of the threshold rule
    paper_table: str | None = None  # a table of rlkit.experiments.data with the paper's numbers
    axes: tuple[tuple[str, tuple[float, ...]], ...] = ()
    notes: str = ""

    def scale(self, scale: str) -> Scale:
        if scale not in self.scales:
            raise RunError(f"experiment {self.name} has no scale {scale!r}; its scales: {', '.join(self.scales)}")
        return self.scales[scale]

    def runs(self, scale: str, seeds: int | None = None) -> list[GridRun]:
        """The grid at ``scale``: every env × variant (of the env's family) × seed 0..seeds−1, named
        ``<env>/<variant>/s<seed>``."""
        from rlkit.experiments.train import env_family

        chosen = self.scale(scale)
        seeds = chosen.seeds if seeds is None else seeds
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
            raise RunError(f"seeds must be an integer >= 1 (valid range [1, inf)); got {seeds!r}")
        return [GridRun(variant.algorithm, env, seed, steps, f"{_safe(env)}/{variant.label}/s{seed}",
                        tuple(sorted({**dict(variant.overrides), **dict(chosen.overrides)}.items())))
                for env, steps in chosen.envs for variant in self.variants
                if variant.family in (None, env_family(env)) and (not chosen.only or variant.label in chosen.only)
                for seed in range(seeds)]

    def variant_of(self, label: str) -> Variant:
        return next(v for v in self.variants if v.label == label)


def _safe(env: str) -> str:
    return env.replace("/", "_")


def _grid_variants(algorithm: str, axes: tuple[tuple[str, tuple[float, ...]], ...]) -> tuple[Variant, ...]:
    """One variant per point of the product of ``axes``: label ``delta=0.001,eta_max=0.25``."""
    names = [name for name, _ in axes]
    return tuple(Variant(",".join(f"{n}={v:g}" for n, v in zip(names, point)), algorithm, tuple(zip(names, point)))
                 for point in itertools.product(*(values for _, values in axes)))


def _half_decades(low_exponent: int, high_exponent: int) -> tuple[float, ...]:
    """10^k for k = low, low + 1/2, ..., high: the points a FloatLogSlider with step 0.5 stops at."""
    return tuple(float(f"{10 ** (k / 2):.6g}") for k in range(2 * low_exponent, 2 * high_exponent + 1))


SMOKE = (("num_envs", 2), ("num_steps", 8))  # 16 env steps per update; smoke runs take one or two updates
SMOKE_STEPS = 16

ATARI_GAMES = ("ALE/BeamRider-v5", "ALE/Breakout-v5", "ALE/Pong-v5", "ALE/Qbert-v5", "ALE/Seaquest-v5",
               "ALE/SpaceInvaders-v5")
MUJOCO_TASKS = ("Ant-v5", "HalfCheetah-v5", "Hopper-v5", "InvertedPendulum-v5", "InvertedDoublePendulum-v5",
                "Reacher-v5", "Swimmer-v5", "Walker2d-v5")
BASELINES = (Variant("acktr", "acktr"), Variant("a2c", "a2c"), Variant("trpo", "trpo"))

ACKTR_DELTA_ETA_MAX_AXES = (("delta", _half_decades(-4, -1)[:-1]), ("eta_max", (0.05, 0.1, 0.25, 0.5, 1.0)))
VMPO_EPS_AXES = (("eps_eta", _half_decades(-2, 0)), ("eps_alpha", _half_decades(-3, -1)))

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "acktr-table1", "ACKTR Table 1: Atari, last-100-episode reward and episodes to human level",
        "Wu et al. 2017, Table 1 and Figure 1", "returns", BASELINES,
        {"smoke": Scale((("ALE/Pong-v5", SMOKE_STEPS),), 1, SMOKE),
         "laptop": Scale((("ALE/Pong-v5", 500_000),), 1),
         "paper": Scale(tuple((game, 10_000_000) for game in ATARI_GAMES), 2)},
        thresholds={"ALE/BeamRider-v5": 5775.0, "ALE/Breakout-v5": 31.8, "ALE/Pong-v5": 9.3,
                    "ALE/Qbert-v5": 13455.0, "ALE/Seaquest-v5": 20182.0, "ALE/SpaceInvaders-v5": 1652.0},
        window=100, paper_table="acktr_table1_atari",
        notes="The paper trains ACKTR and A2C for 50M steps (Table 1; Figure 1 shows 10M) and TRPO for 10M, 2 seeds; "
              "the paper scale here is Figure 1's 10M steps. The laptop scale (Pong, 500k steps, ~2.5 h per run at "
              "~60 steps/s on a 2-core CPU) is far too short for human level: the paper's ACKTR needs 904 episodes "
              "(several million steps) on Pong."),
    Experiment(
        "acktr-table2", "ACKTR Table 2: MuJoCo, episodes to threshold",
        "Wu et al. 2017, Table 2 and Figure 3", "returns", BASELINES,
        {"smoke": Scale((("InvertedPendulum-v5", SMOKE_STEPS),), 1, SMOKE),
         "laptop": Scale((("InvertedPendulum-v5", 100_000),), 3),
         "paper": Scale(tuple((task, 1_000_000) for task in MUJOCO_TASKS), 8)},
        thresholds={"Ant-v5": 3500, "HalfCheetah-v5": 4700, "Hopper-v5": 2000, "InvertedPendulum-v5": 950,
                    "InvertedDoublePendulum-v5": 9100, "Reacher-v5": -7, "Swimmer-v5": 90, "Walker2d-v5": 3000},
        window=10, paper_table="acktr_table2_mujoco",
        notes="The paper reports the 3 best of 8 seeds within 30M steps (Figure 3: 1M steps, 3 seeds); we report the "
              "mean ± std over all seeds and the paper scale is Figure 3's 1M steps × 8 seeds. The laptop scale is "
              "InvertedPendulum only (100k steps); ACKTR on InvertedDoublePendulum (up to 1M steps) and Reacher "
              "(up to 250k), 3 seeds each, is in data/benchmarks/sample_efficiency.txt. "
              "Episode counts use the paper's batch (1 env × 2500 steps) and MuJoCo v5, not the paper's v1."),
    Experiment(
        "acktr-table3", "ACKTR Table 3: timesteps per second during training, by batch size",
        "Wu et al. 2017, Table 3", "throughput",
        tuple(Variant(f"{algo}-b{envs * 20}", algo, (("num_envs", envs), ("num_steps", 20)), "atari")
              for algo in ("acktr", "a2c", "trpo") for envs in (4, 8, 32))
        + tuple(Variant(f"{algo}-b{steps}", algo, (("num_envs", 1), ("num_steps", steps)), "mujoco")
                for algo in ("acktr", "a2c", "trpo") for steps in (1000, 2500, 25000)),
        {"smoke": Scale((("ALE/Pong-v5", SMOKE_STEPS), ("InvertedPendulum-v5", SMOKE_STEPS)), 1, SMOKE,
                       only=("acktr-b640", "a2c-b640", "acktr-b2500", "a2c-b2500")),
         "laptop": Scale((("ALE/Pong-v5", 2560), ("InvertedPendulum-v5", 50_000)), 1),
         "paper": Scale((("ALE/Pong-v5", 100_000), ("InvertedPendulum-v5", 250_000)), 3)},
        paper_table="acktr_table3_timesteps_per_second",
        notes="The paper averages over six Atari games and eight MuJoCo tasks on a GPU machine (Table 3); we time "
              "Pong and InvertedPendulum on this machine's CPU (Atari batch sizes 80/160/640 = 4/8/32 envs × 20 "
              "steps, MuJoCo 1000/2500/25000 = 1 env × that many steps; the variant's batch applies to its own "
              "family: Atari variants on Pong, MuJoCo ones on InvertedPendulum). Absolute numbers differ with the "
              "hardware; the ratios ACKTR/A2C are the claim ('at most 25% more time')."),
    Experiment(
        "acktr-figure5ab", "ACKTR Figure 5a/b: the critic in the Gauss-Newton norm against a first-order critic",
        "Wu et al. 2017, Figure 5(a) and (b)", "returns",
        (Variant("gauss-newton-critic", "acktr"),
         Variant("first-order-critic", "acktr", (("critic_optimizer", "adam"),)),
         Variant("a2c", "a2c")),
        {"smoke": Scale((("CartPole-v1", SMOKE_STEPS),), 1, SMOKE),
         "laptop": Scale((("CartPole-v1", 100_000), ("InvertedPendulum-v5", 100_000)), 3),
         "paper": Scale((("HalfCheetah-v5", 1_000_000), ("ALE/Breakout-v5", 10_000_000)), 3)},
        thresholds={"CartPole-v1": 475, "InvertedPendulum-v5": 950, "HalfCheetah-v5": 4700,
                    "ALE/Breakout-v5": 31.8},
        notes="The paper compares the two critics, with the ACKTR actor, on HalfCheetah and Breakout, beside A2C "
              "(Figure 5a/b): ACKTR's actor beats A2C with either critic, and the Gauss-Newton critic adds sample "
              "efficiency, final reward and stability. The laptop scale uses CartPole and InvertedPendulum; the "
              "first-order critic replaces each Gauss-Newton critic step by an Adam step (lr critic_lr) on the same "
              "gradient (critic_iterations of them per update: 1 on CartPole, 5 on InvertedPendulum, as the presets "
              "say), everything else equal (separate networks)."),
    Experiment(
        "acktr-figure5cd", "ACKTR Figure 5c/d: ACKTR and A2C at several batch sizes",
        "Wu et al. 2017, Figure 5(c) and (d)", "returns",
        tuple(Variant(f"{algo}-b{envs * 16}", algo, (("num_envs", envs), ("num_steps", 16)))
              for algo in ("acktr", "a2c") for envs in (4, 16, 64)),
        {"smoke": Scale((("CartPole-v1", SMOKE_STEPS),), 1, SMOKE, only=("acktr-b64", "a2c-b64")),
         "laptop": Scale((("CartPole-v1", 200_000),), 3),
         "paper": Scale((("ALE/BeamRider-v5", 10_000_000),), 2)},
        thresholds={"CartPole-v1": 475, "ALE/BeamRider-v5": 5775.0},
        notes="The paper compares batch sizes 160 and 640 on Atari; the laptop scale uses CartPole with 64, 256 and "
              "1024 steps per update (4/16/64 envs × 16 steps; paper scale: 16 steps × envs on BeamRider gives 64/256/"
              "1024 too). The claim: ACKTR keeps its sample efficiency as the batch grows, A2C loses it; by updates, "
              "ACKTR gains more from a larger batch."),
    Experiment(
        "vmpo-vs-acktr", "V-MPO against ACKTR on the tasks the kit supports",
        "Song et al. 2020 (V-MPO) beside Wu et al. 2017 (ACKTR)", "returns",
        (Variant("vmpo", "vmpo"), Variant("acktr", "acktr")),
        {"smoke": Scale((("CartPole-v1", SMOKE_STEPS), ("Pendulum-v1", SMOKE_STEPS)), 1, SMOKE),
         "laptop": Scale((("CartPole-v1", 200_000), ("Pendulum-v1", 300_000)), 3),
         "paper": Scale(tuple((game, 10_000_000) for game in ATARI_GAMES)
                        + tuple((task, 1_000_000) for task in MUJOCO_TASKS), 3)},
        thresholds={"CartPole-v1": 475, "Pendulum-v1": -200, **{task: t for task, t in zip(
            MUJOCO_TASKS, (3500, 4700, 2000, 950, 9100, -7, 90, 3000))}},
        notes="V-MPO's paper reports DMLab-30 and Atari-57 at billions of frames with a distributed learner; no "
              "task of its tables fits a laptop. The laptop scale compares the two agents of this kit on CartPole "
              "and Pendulum with the kit's classic presets."),
    Experiment(
        "acktr-delta-eta-max", "Sweep: ACKTR's trust region δ × η_max on CartPole-v1",
        "the kit's sweep for notebook 07's sliders", "sweep",
        _grid_variants("acktr", ACKTR_DELTA_ETA_MAX_AXES),
        {"smoke": Scale((("CartPole-v1", SMOKE_STEPS),), 1, SMOKE, only=("delta=0.0001,eta_max=0.05",
                                                                         "delta=0.01,eta_max=1")),
         "laptop": Scale((("CartPole-v1", 100_000),), 3)},
        thresholds={"CartPole-v1": 475}, axes=ACKTR_DELTA_ETA_MAX_AXES,
        notes="δ on half-decades 1e-4 … 3.2e-2 (the classic preset: 2e-3), η_max ∈ {0.05, 0.1, 0.25, 0.5, 1}; "
              "everything else the classic preset."),
    Experiment(
        "vmpo-eps-eta-eps-alpha", "Sweep: V-MPO's ε_η × ε_α on CartPole-v1",
        "the kit's sweep for notebook 09's sliders", "sweep",
        _grid_variants("vmpo", VMPO_EPS_AXES),
        {"smoke": Scale((("CartPole-v1", SMOKE_STEPS),), 1, SMOKE, only=("eps_eta=0.01,eps_alpha=0.001",
                                                                         "eps_eta=1,eps_alpha=0.1")),
         "laptop": Scale((("CartPole-v1", 200_000),), 2)},
        thresholds={"CartPole-v1": 475}, axes=VMPO_EPS_AXES,
        notes="ε_η on half-decades 1e-2 … 1 (the classic preset: 0.1), ε_α on half-decades 1e-3 … 1e-1 (0.01); "
              "everything else the classic preset."),
)}

SWEEPS = tuple(name for name, e in EXPERIMENTS.items() if e.kind == "sweep")


def experiment(name: str) -> Experiment:
    """``EXPERIMENTS[name]``, or a ``RunError`` listing the valid names."""
    if name not in EXPERIMENTS:
        raise RunError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]
