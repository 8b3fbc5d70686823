"""The statistics of a few training runs: censoring, robust scores, bootstrap intervals, verdicts.

Definitions from Agarwal et al. 2021, *Deep reinforcement learning at the edge of the statistical
precipice* (NeurIPS; its library rliable, archived, is not a dependency): the **interquartile mean**
(the mean of the middle 50% of the runs), **stratified percentile-bootstrap** confidence intervals
(runs resampled with replacement within each stratum: a method, or a method on one task), the
**probability of improvement** P(X < Y) + ½ P(X = Y) over pairs of runs, and the **performance
profile** (the fraction of runs whose score passes τ, as a function of τ).

Censoring (steps or episodes to a threshold): a run that never reached the threshold is only known
to need *more than its budget*; it is never dropped. A statistic of such runs is evaluated twice,
with each censored run at its budget (the lowest value it can have) and at +inf (the highest): the
estimate is the interval between the two (``>x`` when the upper end is unbounded), and a bootstrap
interval takes its lower percentile from the first and its upper percentile from the second, so it
covers every value the censored runs could have. A median with the censored runs at +inf is the
median of ``rlkit.experiments.results.median_to_threshold`` and ``rlkit.experiments.sweeps``.

Verdicts (:func:`verdict`): a claim "X/Y > bound" is *supported* when the 95% interval of the ratio
lies above the bound, *contradicted* when it lies below, *undecided* otherwise; :func:`seeds_to_decide`
estimates how many seeds per method would decide it. Every interval is seeded: the same data give
the same interval on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["CONFIDENCE", "RESAMPLES", "SEED", "Estimate", "censor", "interquartile_mean", "median",
           "bootstrap_ci", "ratio_ci", "difference_ci", "ratio_of_ratios_ci", "geometric_mean_ratio_ci", "probability_of_improvement", "improvement_ci",
           "performance_profile", "verdict", "seeds_to_decide", "fmt_steps"]

CONFIDENCE = 0.95  # of every interval
RESAMPLES = 2000  # bootstrap resamples
SEED = 0  # of the bootstrap's random generator

Statistic = Callable[..., np.ndarray]  # statistic(values, axis=-1)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap interval: ``low``/``high`` is the estimate (equal unless censored
    runs leave it a range), ``ci_low``/``ci_high`` the ``confidence`` interval; ``n`` runs (per method:
    a tuple for two methods), ``censored`` of them censored."""

    low: float
    high: float
    ci_low: float
    ci_high: float
    n: int | tuple[int, ...]
    censored: int | tuple[int, ...] = 0
    confidence: float = CONFIDENCE

    @property
    def value(self) -> float:
        """The estimate's lower end (its value when nothing is censored)."""
        return self.low

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def fmt(self, number: Callable[[float], str] = lambda v: f"{v:.2f}", interval: bool = True) -> str:
        """``5.22 [1.03, 8.40]``; a censored estimate as ``>1.12`` (upper end unbounded), ``<0.9``, ``1.1..1.4`` or
        ``?`` (anything from 0 to inf)."""
        def one(v):
            return "inf" if math.isinf(v) else number(v)
        if self.exact:
            text = one(self.low)
        elif self.low == 0 and math.isinf(self.high):
            text = "?"  # censored runs on both sides: any value
        elif math.isinf(self.high):
            text = ">" + one(self.low)
        elif self.low == 0:
            text = "<" + one(self.high)
        else:
            text = f"{one(self.low)}..{one(self.high)}"
        return text + (f" [{one(self.ci_low)}, {one(self.ci_high)}]" if interval else "")


def fmt_steps(v: float) -> str:
    """Env steps as ``33.9k`` or ``1.00M``."""
    return f"{v / 1e3:.1f}k" if v < 1e6 else f"{v / 1e6:.2f}M"


# ----------------------------------------------------------------------------- scores of runs


def censor(values: Sequence[float], budgets: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Steps (or episodes) to threshold per run, NaN where the run never reached it, → (values with each
    censored run at its budget, a boolean mask of the censored runs)."""
    values, budgets = np.asarray(values, dtype=float), np.broadcast_to(np.asarray(budgets, dtype=float),
                                                                       np.shape(values))
    censored = np.isnan(values)
    return np.where(censored, budgets, values), censored


def interquartile_mean(x, axis: int = -1) -> np.ndarray:
    """The mean of the middle 50% of the values (Agarwal et al. 2021): sort, drop ⌊n/4⌋ from each end, average
    (scipy.stats.trim_mean(x, 0.25)); with 3 runs it is their mean, with 4 the mean of the middle two."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    cut = int(0.25 * n)
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def median(x, axis: int = -1) -> np.ndarray:
    """The median (robust to censored runs at +inf while fewer than half are censored)."""
    return np.median(np.asarray(x, dtype=float), axis=axis)


def _strata(x) -> list[np.ndarray]:
    """One array per stratum: a sequence of numbers is one stratum, a list of sequences several."""
    if len(x) and np.ndim(x[0]) > 0:
        return [np.asarray(s, dtype=float) for s in x]
    return [np.asarray(x, dtype=float)]


def _masks(x, censored) -> list[np.ndarray]:
    strata = _strata(x)
    if censored is None:
        return [np.zeros(len(s), dtype=bool) for s in strata]
    masks = [np.asarray(c, dtype=bool) for c in (censored if len(strata) > 1 else [censored])]
    return masks


def _resample(strata: list[np.ndarray], masks: list[np.ndarray], resamples: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(resamples, total) arrays: each stratum resampled with replacement on its own, then concatenated:
    the values with the censored at their budget, and the same draws with the censored at +inf."""
    low, high = [], []
    for s, m in zip(strata, masks):
        idx = rng.integers(0, len(s), size=(resamples, len(s)))
        low.append(s[idx])
        high.append(np.where(m, np.inf, s)[idx])
    return np.concatenate(low, axis=1), np.concatenate(high, axis=1)


def _both(strata, masks) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate(strata)
    return values, np.where(np.concatenate(masks), np.inf, values)


def _percentiles(low_draws: np.ndarray, high_draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval: the lower end from the low draws, the upper end from the high draws (no
    interpolation, so +inf draws stay +inf and the interval is never narrower than the draws say)."""
    alpha = 1.0 - confidence
    return (float(np.quantile(low_draws, alpha / 2, method="lower")),
            float(np.quantile(high_draws, 1 - alpha / 2, method="higher")))


def bootstrap_ci(x, statistic: Statistic = interquartile_mean, censored=None, *, confidence: float = CONFIDENCE,
                 resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """``statistic`` of the runs ``x`` with its stratified percentile-bootstrap interval.

    ``x``: one method's scores (a sequence), or one sequence per stratum (a task: each is resampled on
    its own, the statistic taken over all); ``censored``: a mask of the same shape (censored runs at
    their budget in ``x``). Seeded: ``seed`` fixes the resamples."""
    strata, masks = _strata(x), _masks(x, censored)
    rng = np.random.default_rng(seed)
    low_draws, high_draws = _resample(strata, masks, resamples, rng)
    values, high_values = _both(strata, masks)
    lo, hi = _percentiles(statistic(low_draws, axis=-1), statistic(high_draws, axis=-1), confidence)
    n, k = sum(len(s) for s in strata), int(sum(m.sum() for m in masks))
    return Estimate(float(statistic(values)), float(statistic(high_values)), lo, hi, n, k, confidence)


def _two_draws(x, y, combine, statistic, censored_x, censored_y, resamples, rng):
    """Bootstrap draws of combine(stat(x), stat(y)), both methods resampled independently (the strata: the two
    methods). ``combine`` is increasing in its first argument and decreasing in its second, so its lower end
    takes x at its budgets and y at +inf, its upper end x at +inf and y at its budgets.
    Returns (low draws, high draws, low estimate, high estimate, n, censored)."""
    sx, mx = _strata(x), _masks(x, censored_x)
    sy, my = _strata(y), _masks(y, censored_y)
    xl, xh = _resample(sx, mx, resamples, rng)
    yl, yh = _resample(sy, my, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo_draws = combine(statistic(xl, axis=-1), statistic(yh, axis=-1))
        hi_draws = combine(statistic(xh, axis=-1), statistic(yl, axis=-1))
        (vxl, vxh), (vyl, vyh) = _both(sx, mx), _both(sy, my)
        low, high = float(combine(statistic(vxl), statistic(vyh))), float(combine(statistic(vxh), statistic(vyl)))
    n = (sum(len(s) for s in sx), sum(len(s) for s in sy))
    k = (int(sum(m.sum() for m in mx)), int(sum(m.sum() for m in my)))
    return lo_draws, hi_draws, low, high, n, k


def _two(x, y, combine, statistic, censored_x, censored_y, confidence, resamples, seed) -> Estimate:
    lo_draws, hi_draws, low, high, n, k = _two_draws(x, y, combine, statistic, censored_x, censored_y, resamples,
                                                     np.random.default_rng(seed))
    lo, hi = _percentiles(lo_draws, hi_draws, confidence)
    return Estimate(low, high, lo, hi, n, k, confidence)


def ratio_of_ratios_ci(a, b, c, d, statistic: Statistic = median, censored=(None, None, None, None), *,
                       confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """(stat(a) / stat(b)) / (stat(c) / stat(d)) with its stratified bootstrap interval (the four groups resampled
    on their own): e.g. how much more a larger batch costs one method than another. ``censored``: the four masks."""
    rng = np.random.default_rng(seed)
    ab = _two_draws(a, b, np.divide, statistic, censored[0], censored[1], resamples, rng)
    cd = _two_draws(c, d, np.divide, statistic, censored[2], censored[3], resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = _percentiles(ab[0] / cd[1], ab[1] / cd[0], confidence)
        low, high = float(ab[2] / cd[3]), float(ab[3] / cd[2])
    return Estimate(low, high, lo, hi, ab[4] + cd[4], ab[5] + cd[5], confidence)


def geometric_mean_ratio_ci(tasks, statistic: Statistic = median, *, confidence: float = CONFIDENCE,
                            resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """The geometric mean over tasks of statistic(x) / statistic(y), ``tasks`` a list of ``(x, censored_x, y,
    censored_y)``, with its stratified bootstrap interval (the strata: each method on each task)."""
    rng = np.random.default_rng(seed)
    parts = [_two_draws(x, y, np.divide, statistic, cx, cy, resamples, rng) for x, cx, y, cy in tasks]

    def geomean(values):
        with np.errstate(divide="ignore"):
            return np.exp(np.mean(np.log(values), axis=0))

    lo, hi = _percentiles(geomean([p[0] for p in parts]), geomean([p[1] for p in parts]), confidence)
    n = tuple(sum(p[4][i] for p in parts) for i in (0, 1))
    k = tuple(sum(p[5][i] for p in parts) for i in (0, 1))
    return Estimate(float(geomean([p[2] for p in parts])), float(geomean([p[3] for p in parts])), lo, hi, n, k,
                    confidence)


def ratio_ci(x, y, statistic: Statistic = median, censored_x=None, censored_y=None, *,
             confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """statistic(x) / statistic(y) (positive scores, e.g. steps to threshold: > 1 means x needs more) with its
    stratified bootstrap interval; censored runs as in the module docstring (x/+inf = 0, +inf/y = +inf)."""
    return _two(x, y, np.divide, statistic, censored_x, censored_y, confidence, resamples, seed)


def difference_ci(x, y, statistic: Statistic = interquartile_mean, censored_x=None, censored_y=None, *,
                  confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """statistic(x) − statistic(y) with its stratified bootstrap interval (e.g. a difference of final returns)."""
    return _two(x, y, np.subtract, statistic, censored_x, censored_y, confidence, resamples, seed)


# ----------------------------------------------------------------------------- comparisons of runs


def _pairwise(x, y, censored_x, censored_y) -> np.ndarray:
    """P(x_i < y_j) per pair, + ½ for a tie: 1, 0 or ½. A censored run is "> its budget": a pair it leaves
    open (the other run's value above that budget, or both censored) counts as a tie."""
    x, y = np.asarray(x, dtype=float)[..., :, None], np.asarray(y, dtype=float)[..., None, :]
    cx = np.zeros(x.shape, bool) if censored_x is None else np.asarray(censored_x, bool)[..., :, None]
    cy = np.zeros(y.shape, bool) if censored_y is None else np.asarray(censored_y, bool)[..., None, :]
    less = np.where(cx, False, np.where(cy, x < y, x < y))  # x reached below y's value (or below y's budget)
    more = np.where(cy, False, np.where(cx, y < x, y < x))  # y reached below x's value (or below x's budget)
    return np.where(less, 1.0, np.where(more, 0.0, 0.5))


def probability_of_improvement(x, y, censored_x=None, censored_y=None, *, lower_is_better: bool = True) -> float:
    """P(X < Y) + ½ P(X = Y) over all pairs of a run of X and a run of Y (Agarwal et al. 2021, Mann-Whitney U / (n m)):
    the chance that a run of X beats a run of Y. ``lower_is_better`` (steps to threshold); False for returns.
    Censored runs: see :func:`_pairwise` (a pair their budget leaves open is a tie). Several strata (tasks):
    the average over tasks."""
    sx, sy = _strata(x), _strata(y)
    mx = _masks(x, censored_x)
    my = _masks(y, censored_y)
    per_task = []
    for a, ca, b, cb in zip(sx, mx, sy, my):
        p = _pairwise(a, b, ca, cb) if lower_is_better else _pairwise(b, a, cb, ca).T
        per_task.append(p.mean())
    return float(np.mean(per_task))


def improvement_ci(x, y, censored_x=None, censored_y=None, *, lower_is_better: bool = True,
                   confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """:func:`probability_of_improvement` with its bootstrap interval (each method's runs resampled on their own)."""
    sx, mx, sy, my = _strata(x), _masks(x, censored_x), _strata(y), _masks(y, censored_y)
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    for a, ca, b, cb in zip(sx, mx, sy, my):
        ia = rng.integers(0, len(a), size=(resamples, len(a)))
        ib = rng.integers(0, len(b), size=(resamples, len(b)))
        if lower_is_better:
            p = _pairwise(a[ia], b[ib], ca[ia], cb[ib])
        else:
            p = np.swapaxes(_pairwise(b[ib], a[ia], cb[ib], ca[ia]), -1, -2)
        draws += p.mean(axis=(-1, -2)) / len(sx)
    value = probability_of_improvement(x, y, censored_x, censored_y, lower_is_better=lower_is_better)
    lo, hi = _percentiles(draws, draws, confidence)
    n = (sum(len(s) for s in sx), sum(len(s) for s in sy))
    k = (int(sum(m.sum() for m in mx)), int(sum(m.sum() for m in my)))
    return Estimate(value, value, lo, hi, n, k, confidence)


def performance_profile(x, taus, censored=None, *, lower_is_better: bool = False) -> np.ndarray:
    """The fraction of runs whose score passes each τ (Agarwal et al. 2021): score > τ (returns), or, with
    ``lower_is_better`` (steps to threshold), score ≤ τ: the fraction of runs that had reached the threshold
    within τ steps (a censored run never counts: it is only known to need more than its budget)."""
    x = np.asarray(x, dtype=float)
    taus = np.asarray(taus, dtype=float)
    if lower_is_better:
        if censored is not None:
            x = np.where(np.asarray(censored, bool), np.inf, x)
        return (x[None, :] <= taus[:, None]).mean(axis=1)
    return (x[None, :] > taus[:, None]).mean(axis=1)


# ----------------------------------------------------------------------------- verdicts


def verdict(estimate: Estimate, bound: float = 1.0, greater: bool = True) -> str:
    """"supported" when the interval clears the bound in the claimed direction (``greater``: the claim is
    "the statistic > bound"), "contradicted" when it clears it the other way, "undecided" otherwise."""
    above, below = estimate.ci_low > bound, estimate.ci_high < bound
    if not greater:
        above, below = below, above
    return "supported" if above else "contradicted" if below else "undecided"


def seeds_to_decide(x, y, censored_x=None, censored_y=None, *, confidence: float = CONFIDENCE) -> float:
    """Seeds per method that would decide the claim "x/y ≠ 1", from the observed spread: the n at which a
    normal interval of the difference of mean log scores, z·√((s_x² + s_y²)/n), is narrower than the observed
    |mean log x − mean log y| (censored runs at their budget; s: the runs' standard deviation, ddof=1).
    At least one more than the seeds run; inf when the observed difference is 0."""
    x, y = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    gap = abs(x.mean() - y.mean())
    z = _normal_quantile(0.5 + confidence / 2)
    spread = (x.var(ddof=1) if len(x) > 1 else 0.0) + (y.var(ddof=1) if len(y) > 1 else 0.0)
    now = max(len(x), len(y))
    if gap == 0:
        return math.inf
    return float(max(now + 1, math.ceil(z * z * spread / gap**2)))


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (bisection on erf; no scipy)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
