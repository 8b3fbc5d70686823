"""The command line: ``python -m rlkit train | plot | evaluate | reproduce | sweep | report``.

The agent hyperparameter flags are generated from the agents' ``Config`` dataclasses: field
``eta_max`` is ``--eta-max``, ``stats_decay`` is ``--stats-decay`` (one name per concept, the
same as in code, CSV columns and notebooks). Boolean fields get ``--name`` / ``--no-name``;
list fields (``hidden_sizes``) take several values (``--hidden-sizes 64 64``). A flag of a field
the chosen algorithm does not have is refused with the list of its fields.

Errors in what was asked (unknown env id, invalid hyperparameter, a run directory in the way, a
corrupt checkpoint, a run directory in use by another process, a full disk, ...) print one line,
``rlkit <command>: error: ...``, and exit with status 2, having changed nothing on disk. Ctrl-C while
training finishes the update under way, checkpoints it, exits with status 130 and prints the
``--resume`` command that continues the run.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import typing
from pathlib import Path

from rlkit.experiments.runs import RunError

EXAMPLES = """\
examples:
  python -m rlkit train acktr --env CartPole-v1 --steps 100000 --seed 0
  python -m rlkit train acktr --env InvertedPendulum-v5 --steps 50000 --delta 0.001 --eta-max 0.1
  python -m rlkit train --resume runs/acktr-CartPole-v1-s0 --steps 200000
  python -m rlkit plot runs/acktr-CartPole-v1-s* runs/a2c-CartPole-v1-s* --out cartpole.png
  python -m rlkit evaluate runs/acktr-CartPole-v1-s0 --episodes 10
  python -m rlkit reproduce acktr-table2 --scale laptop --workers 2
  python -m rlkit reproduce acktr-table1 --scale paper --backend ray --address auto --out /shared/acktr-table1
  python -m rlkit sweep acktr-delta-eta-max --workers 2
  python -m rlkit report runs/reproduce/acktr-table2-laptop
"""

GRID_EPILOG = """\
A grid is continued where it stopped when the same command is given again: finished runs are
skipped, half-finished runs resume exactly from their latest checkpoint, failed runs are retried.
--backend ray runs one Ray task per run on the cluster at --address (default: a local one), with
the same directory layout; DIR must then be on a file system every node sees.
"""

TRAIN_EPILOG = """\
run directory (default runs/<algorithm>-<env>-s<seed>): config.json, episodes.csv, updates.csv,
checkpoints/update-NNNNNN.pt (every --checkpoint-every updates and after the last).

--resume RUN_DIR continues a run from its latest checkpoint, exactly (on CPU: the same CSVs and
parameters as a run never interrupted). The run's config.json wins: arguments that would change
the results (algorithm, --env, --seed, --device, --preset, hyperparameters) are refused unless
equal to the run's; --steps (a new target), --checkpoint-every and --keep-checkpoints may change.
"""

# Flags of `train` itself; an agent Config field with one of these names would be shadowed.
RESERVED = {"env", "steps", "seed", "preset", "device", "run_dir", "checkpoint_every", "keep_checkpoints",
            "overwrite", "resume", "progress", "help", "algorithm"}


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (status 2, like every other error)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str) -> int:
    """An integer from the command line: ``100000``, ``1e5`` (an integral float); else ``ValueError``."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        value = float(text)  # ValueError for words; nan, inf and 1.5 are refused below
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(text) from None
        return int(value)


def _bounded_int(low: int, high: int):
    """An argparse type: an integer in [low, high], refused with the range otherwise."""
    what = {1: "a positive integer", 0: "an integer >= 0"}.get(low, "an integer")
    valid = f"{what} (valid range [{low}, {high}])"

    def parse(text: str) -> int:
        try:
            value = _integer(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {valid}; got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {valid}; got {text.strip()}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


MAX_SEED = 2**32 - 1  # rlkit.experiments.runs.MAX_SEED (not imported here: the parser must start fast)
_positive_int = _bounded_int(1, 10**12)
_non_negative_int = _bounded_int(0, 10**6)
_seed = _bounded_int(0, MAX_SEED)


# ----------------------------------------------------------------------------- hyperparameter flags


def hyperparameter_fields(agents: dict[str, type]) -> dict[str, dict]:
    """``{field: {"type": ..., "defaults": {algorithm: default}}}`` over every agent's Config."""
    fields: dict[str, dict] = {}
    for name, cls in sorted(agents.items()):
        hints = typing.get_type_hints(cls.Config)
        for f in dataclasses.fields(cls.Config):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            entry = fields.setdefault(f.name, {"type": hints[f.name], "defaults": {}})
            entry["defaults"][name] = default
    return fields


def flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _add_hyperparameter_flags(parser: argparse.ArgumentParser, agents: dict[str, type]) -> list[str]:
    group = parser.add_argument_group(
        "agent hyperparameters",
        "generated from the agents' Config fields; shown: each algorithm's default (its 'classic' preset; "
        "the env family's preset, 'mujoco' or 'atari', changes some: see rlkit/agents)")
    names = []
    for name, entry in hyperparameter_fields(agents).items():
        if name in RESERVED:
            continue
        kind, defaults = entry["type"], entry["defaults"]
        shown = ", ".join(f"{algo} {_show(value)}" for algo, value in defaults.items())
        common = dict(dest=name, default=argparse.SUPPRESS, help=shown)
        if kind is bool:
            group.add_argument(flag(name), action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(kind) is list:
            group.add_argument(flag(name), nargs="+", metavar="INT", **common)
        else:
            group.add_argument(flag(name), metavar=getattr(kind, "__name__", "VALUE").upper(), **common)
        names.append(name)
    return names


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return repr(value) if isinstance(value, str) else str(value)


def _overrides(args: argparse.Namespace, names: list[str], agents: dict[str, type], algorithm: str | None) -> dict:
    overrides = {}
    for name in names:
        if hasattr(args, name):
            value = getattr(args, name)
            overrides[name] = ",".join(value) if isinstance(value, list) else value
    if algorithm in agents:
        valid = {f.name for f in dataclasses.fields(agents[algorithm].Config)}
        foreign = [name for name in overrides if name not in valid]
        if foreign:
            others = {name: [a for a, cls in agents.items() if name in {f.name for f in dataclasses.fields(cls.Config)}]
                      for name in foreign}
            listed = ", ".join(f"{flag(n)} (a hyperparameter of {'/'.join(others[n])})" for n in foreign)
            raise RunError(f"{listed}: not a hyperparameter of {algorithm}; {algorithm}'s are: "
                           + ", ".join(flag(f.name) for f in dataclasses.fields(agents[algorithm].Config)))
    return overrides


# ----------------------------------------------------------------------------- the parser


def build_parser() -> tuple[argparse.ArgumentParser, list[str]]:
    from rlkit.agents import AGENTS

    parser = _Parser(prog="python -m rlkit", description="rlkit: train, plot and evaluate natural-gradient RL agents.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", metavar="{train,plot,evaluate,reproduce,sweep,report}",
                                     parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train", help="train an agent into a run directory (or --resume one)", allow_abbrev=False,
        description="Train an agent on a gymnasium env and write a run directory.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("algorithm", nargs="?", choices=sorted(AGENTS), help="the agent (optional with --resume)")
    train.add_argument("--env", metavar="ID", help="gymnasium env id: CartPole-v1, InvertedPendulum-v5, ALE/Pong-v5, ...")
    train.add_argument("--steps", type=_positive_int, metavar="N",
                       help="train until this many env steps (summed over the envs); with --resume, the new target")
    train.add_argument("--seed", type=_seed, metavar="S", help=f"seed of everything, in [0, {MAX_SEED}] (default 0)")
    presets = sorted({preset for cls in AGENTS.values() for preset in cls.presets})
    train.add_argument("--preset", choices=presets,
                       help="hyperparameter preset (default: the env family's: atari, mujoco, else classic); "
                            "the flags below override it")
    train.add_argument("--device", metavar="cpu|cuda", help="torch device (default cpu)")
    train.add_argument("--run-dir", metavar="DIR", help="run directory (default runs/<algorithm>-<env>-s<seed>)")
    train.add_argument("--checkpoint-every", type=_bounded_int(1, 10**9), metavar="UPDATES",
                       help="checkpoint every this many updates (default 100; always after the last)")
    train.add_argument("--keep-checkpoints", type=_non_negative_int, metavar="K",
                       help="keep the newest K checkpoints (default 3; 0 keeps all)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run directory (only an rlkit run)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint, exactly")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    names = _add_hyperparameter_flags(train, AGENTS)

    plot = commands.add_parser("plot", help="learning curves of runs (mean ± std over seeds) as a PNG",
                               description="Write a learning-curve PNG: mean ± std over the seeds of each "
                                           "algorithm and env, by env steps and by wall time.", allow_abbrev=False)
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or directories of runs)")
    plot.add_argument("--out", default="learning_curves.png", metavar="PNG", help="output file (default learning_curves.png)")
    plot.add_argument("--window", type=_bounded_int(1, 10**6), default=10, metavar="EPISODES",
                      help="each run's curve is the mean return of its last EPISODES episodes (default 10)")

    evaluate = commands.add_parser("evaluate", help="play episodes with a run's latest checkpoint", allow_abbrev=False,
                                   description="Play episodes with the deterministic policy of a run's latest checkpoint "
                                               "(whole Atari games, raw rewards, normalization frozen).")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=_bounded_int(1, 10**6), default=10, metavar="N", help="episodes to play (default 10)")
    evaluate.add_argument("--seed", type=_seed, metavar="S", help="env seed (default: the run's seed + 1000000)")
    evaluate.add_argument("--video", metavar="FILE", help="write the frames as a video: .mp4, .avi or .gif")
    _add_grid_commands(commands)
    return parser, names


def _add_grid_commands(commands) -> None:
    from rlkit.experiments.registry import EXPERIMENTS, SCALES, SWEEPS
    from rlkit.experiments.grid import BACKENDS

    listing = "experiments:\n" + "\n".join(f"  {name:24s} {e.title}" for name, e in EXPERIMENTS.items()
                                            if e.kind != "sweep")
    reproduce = commands.add_parser(
        "reproduce", help="run a table or figure of the papers as a grid of runs, then report it",
        description="Run an experiment's grid (every env × variant × seed at the chosen scale) and write its "
                    "report (report.md, learning_curves.png) into the grid directory.",
        epilog=listing + "\n\n" + GRID_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    reproduce.add_argument("experiment", choices=[n for n, e in EXPERIMENTS.items() if e.kind != "sweep"],
                           metavar="EXPERIMENT", help="which table or figure (listed below)")
    reproduce.add_argument("--scale", choices=SCALES, default="laptop",
                           help="smoke: checks the pipeline; laptop: what a 2-core CPU affords; paper: the paper's "
                                "tasks, steps and seeds (a cluster). Default laptop")
    sweep = commands.add_parser(
        "sweep", help="run a hyperparameter sweep and write its compact table for the notebooks' sliders",
        description="Run a sweep's grid (every hyperparameter point × seed) and write its table "
                    "(data/sweeps/NAME.csv and .json, what rlkit.experiments.sweeps and the notebooks read).",
        epilog=GRID_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sweep.add_argument("experiment", choices=SWEEPS, metavar="SWEEP", help="one of: " + ", ".join(SWEEPS))
    sweep.add_argument("--scale", choices=("smoke", "laptop"), default="laptop", help="default laptop")
    sweep.add_argument("--table", metavar="CSV", help="where the table goes (default data/sweeps/SWEEP.csv; with "
                                                      "--scale smoke: DIR/SWEEP.csv)")
    for grid in (reproduce, sweep):
        grid.add_argument("--seeds", type=_bounded_int(1, 1000), metavar="N", help="seeds 0..N-1 (default: the scale's)")
        grid.add_argument("--backend", choices=BACKENDS, default="local", help="local process pool (default) or Ray")
        grid.add_argument("--workers", type=_bounded_int(1, 1024), default=1, metavar="N",
                          help="local processes (default 1: in this process); the ray backend uses the cluster's CPUs")
        grid.add_argument("--address", metavar="ADDR", help="Ray cluster address ('auto', 'ray://host:10001'); "
                                                            "default: start a local one")
        grid.add_argument("--retries", type=_bounded_int(0, 100), default=2, metavar="K",
                          help="restarts of a run whose worker died (it resumes from its checkpoint); default 2")
        grid.add_argument("--out", metavar="DIR", help="grid directory (default runs/reproduce/EXPERIMENT-SCALE, "
                                                       "runs/sweeps/SWEEP-SCALE)")
        grid.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    report = commands.add_parser("report", help="a finished grid as the paper's table, our numbers beside the paper's",
                                 description="Print a grid's report and write DIR/report.md and DIR/learning_curves.png.",
                                 allow_abbrev=False)
    report.add_argument("grid_dir", metavar="DIR", help="a directory written by reproduce or sweep")
    report.add_argument("--out", metavar="OUTDIR", help="where report.md, learning_curves.png, rows.csv and runs.csv "
                                                        "go (default DIR; data/reproductions/NAME keeps them in git)")


# ----------------------------------------------------------------------------- commands


def _train(args: argparse.Namespace, names: list[str], argv: list[str]) -> int:
    from rlkit.agents import AGENTS
    from rlkit.experiments.train import DEFAULT_CHECKPOINT_EVERY, DEFAULT_KEEP_CHECKPOINTS, resume, train

    if args.resume is not None:
        if args.overwrite:
            raise RunError("--resume and --overwrite contradict each other: choose one")
        if args.run_dir is not None and Path(args.run_dir).resolve() != Path(args.resume).resolve():
            raise RunError(f"--run-dir {args.run_dir} and --resume {args.resume} name different directories")
        from rlkit.experiments.runs import read_config

        algorithm = args.algorithm or read_config(args.resume)["algorithm"]
        expect = {"algorithm": args.algorithm, "env": args.env, "seed": args.seed, "device": args.device,
                  "preset": args.preset, "overrides": _overrides(args, names, AGENTS, algorithm)}
        result = resume(args.resume, steps=args.steps, checkpoint_every=args.checkpoint_every,
                        keep_checkpoints=args.keep_checkpoints, progress=args.progress, expect=expect)
    else:
        missing = [what for what, value in (("ALGORITHM", args.algorithm), ("--env", args.env), ("--steps", args.steps))
                   if value is None]
        if missing:
            raise RunError(f"train needs {', '.join(missing)} (or --resume RUN_DIR)")
        result = train(
            args.algorithm, args.env, steps=args.steps, seed=0 if args.seed is None else args.seed,
            overrides=_overrides(args, names, AGENTS, args.algorithm), preset=args.preset,
            device=args.device or "cpu", run_dir=args.run_dir,
            checkpoint_every=args.checkpoint_every or DEFAULT_CHECKPOINT_EVERY,
            keep_checkpoints=DEFAULT_KEEP_CHECKPOINTS if args.keep_checkpoints is None else args.keep_checkpoints,
            overwrite=args.overwrite, progress=args.progress, command="python -m rlkit " + shlex.join(argv))
    recent = f", recent mean return {sum(result.recent_returns) / len(result.recent_returns):.2f}" if result.recent_returns else ""
    print(f"{result.run_dir}: {result.updates} updates, {result.env_steps} env steps, "
          f"{result.wall_time_s:.1f} s{recent}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    from rlkit.experiments.plots import plot_learning_curves

    from rlkit.experiments.runs import check_writable

    check_writable(Path(args.out).parent)
    figure = plot_learning_curves(args.run_dirs, out=args.out, window=args.window)
    import matplotlib.pyplot as plt

    plt.close(figure)
    print(args.out)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rlkit.experiments.train import evaluate

    result = evaluate(args.run_dir, args.episodes, seed=args.seed, video=args.video)
    print(f"{args.run_dir} (update {result.update}, {result.env_steps} env steps): mean return "
          f"{result.mean:.2f} ± {result.std:.2f} over {len(result.returns)} episodes")
    if result.video is not None:
        print(f"video: {result.video}")
    return 0


def _run_grid_command(args: argparse.Namespace, argv: list[str]) -> int:
    from rlkit.experiments.registry import experiment
    from rlkit.experiments.grid import run_grid, summarize_outcomes

    exp = experiment(args.experiment)
    kind = "reproduce" if args.command == "reproduce" else "sweeps"
    root = Path(args.out or Path("runs") / kind / f"{exp.name}-{args.scale}")
    if args.backend == "local" and args.address is not None:
        raise RunError("--address is for --backend ray")
    from rlkit.experiments.runs import check_writable

    check_writable(root)
    if args.command == "sweep" and args.table:
        check_writable(Path(args.table).parent)
    runs = exp.runs(args.scale, args.seeds)
    command = "python -m rlkit " + shlex.join(argv)
    print(f"{exp.title}: {len(runs)} runs at scale {args.scale} into {root} ({args.backend} backend)")
    outcomes = run_grid(runs, root, backend=args.backend, workers=args.workers, address=args.address,
                        retries=args.retries, progress=args.progress, command=command,
                        about={"experiment": exp.name, "scale": args.scale, "seeds": args.seeds})
    print(f"{root}: {summarize_outcomes(outcomes)}")
    failed = [o for o in outcomes if o.failed]
    for outcome in failed:
        print(f"  FAILED {outcome.run.name}: {outcome.error}", file=sys.stderr)
    if args.command == "sweep" and not failed:
        from rlkit.experiments.report import write_sweep_table

        table = Path(args.table) if args.table else (
            root / f"{exp.name}.csv" if args.scale == "smoke" else Path("data") / "sweeps" / f"{exp.name}.csv")
        print(f"wrote {write_sweep_table(root, table, command)} and {table.with_suffix('.json')}")
    else:
        _report_grid(root)
    if failed:
        print(f"rlkit {args.command}: {len(failed)} run(s) failed; the others are kept. Give the same command "
              "again to retry them.", file=sys.stderr)
        return 1
    return 0


def _report_grid(root: Path, out: str | None = None) -> int:
    from rlkit.experiments.report import report

    from rlkit.experiments.runs import check_writable

    result = report(root)
    check_writable(root if out is None else Path(out))
    written = result.save(root if out is None else Path(out))
    print(result.markdown)
    print("wrote " + ", ".join(map(str, written)))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, names = build_parser()
    args = parser.parse_args(argv)
    prog = f"rlkit {args.command}"
    try:
        if args.command == "train":
            return _train(args, names, argv)
        if args.command == "plot":
            return _plot(args)
        if args.command in ("reproduce", "sweep"):
            return _run_grid_command(args, argv)
        if args.command == "report":
            return _report_grid(Path(args.grid_dir), args.out)
        return _evaluate(args)
    except RunError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the command had to read or write (the checks above name most of them first)
        where = f" {error.filename}" if error.filename else ""
        print(f"{prog}: error: cannot access{where}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"\n{prog}: interrupted; {_how_to_continue(args, interrupt)}", file=sys.stderr)
        return 130


def _how_to_continue(args: argparse.Namespace, interrupt: KeyboardInterrupt) -> str:
    """What the Ctrl-C message tells the user to type next: the real run directory where there is one."""
    from rlkit.experiments.train import Interrupted

    if args.command in ("reproduce", "sweep"):
        return "give the same command again: finished runs are kept, the others resume from their checkpoints"
    if isinstance(interrupt, Interrupted):
        if interrupt.run_dir is None:
            return "nothing was written (the run had not finished its first update)"
        return (f"update {interrupt.update} is checkpointed; continue with "
                f"python -m rlkit train --resume {shlex.quote(str(interrupt.run_dir))}")
    run_dir = getattr(args, "resume", None) or getattr(args, "run_dir", None)
    if args.command == "train" and run_dir is None and args.algorithm and args.env:
        from rlkit.experiments.runs import default_run_dir

        run_dir = default_run_dir(args.algorithm, args.env, 0 if args.seed is None else args.seed)
    if args.command == "train" and run_dir is not None:
        return ("the run continues from its latest checkpoint with python -m rlkit train --resume "
                f"{shlex.quote(str(run_dir))} (if it got as far as its first update)")
    return "nothing to continue"
