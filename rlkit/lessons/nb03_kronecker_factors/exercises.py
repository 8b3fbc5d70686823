"""Exercise checks for notebook 03 (Kronecker factors).

Exercise 1 is an implementation exercise: :func:`check_kfac_statistics` runs the student's
``kfac_statistics(model, x, y, generator)`` against ``rlkit.kfac.KFAC`` on seeded random networks
and batches, and names the typical mistakes. The numeric checks take the student's answer
(``None`` while the exercise is not done: the check then says so and returns False, it does not
raise), compare it with rlkit's own computation and print ✓ or ✗ with a hint. The problem data
are module constants or seeded functions, so the notebook's text and the check read the same
numbers.
"""
from __future__ import annotations

import torch
from torch import nn

from rlkit.critic import categorical_fisher_loss
from rlkit.kfac import KFAC
from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report
from rlkit.lessons.nb03_kronecker_factors.demos import (
    exact_kfac,
    kfac_blocks,
    seeded_mlp,
)
from rlkit.nets import NatureCNN

__all__ = [
    "check_kfac_statistics",
    "LAYOUT_SIZES",
    "layout_problem",
    "check_preconditioned_gradient",
    "CONV_LAYER",
    "check_conv_factor_entries",
    "two_sample_problem",
    "check_two_sample_constant",
]


#: Exercise 2: a Linear(5, 6) layer (d_in = 5 + 1 for the bias = 6 = d_out: A, S and [∇W | ∇b]
#: are all 6×6, so the paper's printed formula runs without a shape error) under a 6 → 3 softmax head.
LAYOUT_SIZES = (5, 6, 3)
#: Exercise 3: the Nature CNN's first convolution: in channels, out channels, kernel size, stride.
CONV_LAYER = (4, 32, 8, 4)



# ---------------------------------------------------------------- exercise 1: K-FAC's statistics


def _statistics_cases() -> list[dict]:
    """Seeded tanh networks with a softmax output and batches (x, observed labels y), with a
    generator for the Fisher pass's labels."""
    cases = []
    for number, (sizes, n) in enumerate([([5, 6, 6, 3], 16), ([3, 7, 4], 40), ([4, 8, 8, 5], 9)]):
        gen = torch.Generator().manual_seed(100 + number)
        x = torch.randn(n, sizes[0], generator=gen, dtype=torch.float64)
        y = torch.randint(0, sizes[-1], (n,), generator=gen)
        cases.append({"model": seeded_mlp(sizes, seed=10 + number), "x": x, "y": y,
                      "generator": torch.Generator().manual_seed(1000 + number)})
    return cases


def _rlkit_statistics(model, x, y, generator, *, fisher_labels: str = "sampled") -> list[tuple]:
    """rlkit's (A, S, G) per layer, and the pieces the mistakes are built from.

    ``KFAC.update_stats`` with ``categorical_fisher_loss`` drawing ŷ from a fresh generator with
    the student's seed (``torch.multinomial`` on the softmax: the draws of ``sample_labels``);
    ``fisher_labels="observed"`` gives the empirical Fisher instead. Each row is
    ``(A, S, G, G_fisher, n)`` with G_fisher = [∇W | ∇b] of the summed Fisher loss.
    """
    fresh = torch.Generator().manual_seed(generator.initial_seed())
    kfac = KFAC(model, stats_decay=0.0)
    try:
        logits = model(x)
        if fisher_labels == "observed":
            fisher_loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        else:
            fisher_loss = categorical_fisher_loss(logits, generator=fresh)
        kfac.update_stats(fisher_loss, force=True)
        layers = list(kfac.layers.values())
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        fisher_grads = torch.autograd.grad(fisher_loss, params, retain_graph=True)
        model.zero_grad()
        nn.functional.cross_entropy(logits, y).backward()
    finally:
        kfac.remove()
    rows = []
    for i, layer in enumerate(layers):
        G = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1).detach().clone()
        gw, gb = fisher_grads[2 * i], fisher_grads[2 * i + 1]
        rows.append((layer.A.clone(), layer.S.clone(), G, torch.cat([gw, gb[:, None]], dim=1), x.shape[0]))
    model.zero_grad()
    return rows


def _flat(rows) -> tuple:
    return tuple(t for row in rows for t in row)


def _statistics_mistake(change, fisher_labels: str = "sampled"):
    def mistaken(model, x, y, generator):
        return _flat(change(A, S, G, Gf, n) for A, S, G, Gf, n in
                     _rlkit_statistics(model, x, y, generator, fisher_labels=fisher_labels))
    return mistaken


#: (what the mistaken statistics are, computed from rlkit's, and what the check says)
STATISTICS_MISTAKES = [
    (_statistics_mistake(lambda A, S, G, Gf, n: (A[:-1, :-1], S, G)),
     "A has no bias coordinate: append a 1 to every input a (the bias is the last column of [W | b])"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S / n**2, G)),
     "S is N² too small: that is the gradient of the MEAN Fisher loss, which divides every per-sample "
     "gradient g_n by N; differentiate the SUM −Σ log p(ŷ_n | x_n)"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S / n, G)),
     "S is N times too small: the gradient of the MEAN Fisher loss divides every g_n by N (S by N²), "
     "and a sum over the batch multiplies by N; differentiate the SUM −Σ log p(ŷ_n | x_n) and average g gᵀ"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S, G), fisher_labels="observed"),
     "that S is the empirical Fisher's: the Fisher pass used the observed labels y; K-FAC's S takes "
     "labels sampled from the model, ŷ = sample_labels(logits, generator)"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A * n, S, G)),
     "A is N times too large: A is a batch MEAN of a aᵀ, not a sum"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S * n, G)),
     "S is N times too large: S is a batch MEAN of g gᵀ, not a sum"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A * n, S * n, G)),
     "A and S are N times too large: both are batch MEANS, not sums"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S, G + Gf)),
     "G also holds the Fisher loss's gradient: a backward() of the Fisher pass accumulated into .grad; "
     "differentiate the Fisher loss with torch.autograd.grad (or zero .grad before the loss's backward)"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S, G * n)),
     "G is N times too large: G is the gradient of the MEAN cross-entropy (only S needs per-sample gradients)"),
    (_statistics_mistake(lambda A, S, G, Gf, n: (A, S, Gf / n)),
     "G comes from the sampled labels ŷ: the gradient uses the observed labels y, only the Fisher pass uses ŷ"),
]


def check_kfac_statistics(kfac_statistics) -> bool:
    """Exercise 1: ``kfac_statistics(model, x, y, generator)`` returns, for every ``nn.Linear`` of
    the model in order, ``(A, S, G)``: K-FAC's factors from one Fisher pass with labels drawn by
    ``sample_labels(logits, generator)`` and the gradient [∇W | ∇b] of the mean cross-entropy on
    (x, y). Compared with ``rlkit.kfac.KFAC`` (same generator seed, hence the same labels) on three
    seeded networks and batches; the typical mistakes of ``STATISTICS_MISTAKES`` are named."""

    def student(model, x, y, generator):
        return _flat(kfac_statistics(model, x, y, generator))

    def reference(model, x, y, generator):
        return _flat(row[:3] for row in _rlkit_statistics(model, x, y, generator))

    return check_implementation(student, reference, _statistics_cases(),
                                what="kfac_statistics: A, S and G of every nn.Linear",
                                mistakes=STATISTICS_MISTAKES, rtol=1e-6, atol=1e-10)


# ---------------------------------------------------------------- exercise 2: the vec layout


def _layout_setup(seed: int = 0):
    net = seeded_mlp(list(LAYOUT_SIZES), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, LAYOUT_SIZES[0], generator=gen, dtype=torch.float64)
    labels = torch.randint(0, LAYOUT_SIZES[-1], (64,), generator=gen)
    return net, x, labels


def layout_problem(seed: int = 0) -> dict[str, torch.Tensor]:
    """The first layer of a seeded 5 → 6 → 3 softmax network on 64 inputs: its K-FAC factors A
    (6×6, bias coordinate last) and S (6×6) from an exact-expectation pass, and its gradient
    G = [∇W | ∇b] (6×6, PyTorch's layout: row i is output unit i) of the mean cross-entropy."""
    net, x, labels = _layout_setup(seed)
    kfac = exact_kfac(net, x)
    net.zero_grad()
    nn.functional.cross_entropy(net(x), labels).backward()
    layer = net[0]
    G = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1).detach().clone()
    A, S = kfac.layers["0"].A.clone(), kfac.layers["0"].S.clone()
    return {"A": A, "S": S, "G": G}


def _rlkit_preconditioned(seed: int = 0) -> torch.Tensor:
    """KFAC.precondition (undamped) on the same layer: the answer, computed by rlkit."""
    net, x, labels = _layout_setup(seed)
    kfac = exact_kfac(net, x, damping=0.0)
    net.zero_grad()
    nn.functional.cross_entropy(net(x), labels).backward()
    kfac.precondition()
    layer = net[0]
    return torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1).detach()


def check_preconditioned_gradient(answer) -> bool:
    """Exercise 2: F̂⁻¹vec(∇W) for the layer of ``layout_problem()``, as a 6×6 matrix in PyTorch's layout."""
    what = "K-FAC preconditioned gradient of the Linear(5, 6) layer, as a 6×6 matrix [∇W | ∇b]"
    if answer is None:
        return report(False, what, NOT_DONE)
    p = layout_problem()
    A, S, G = p["A"], p["S"], p["G"]
    expected = _rlkit_preconditioned()
    ok, hint = close(answer, expected, rtol=1e-6, atol=1e-8)
    if not ok:
        A_inv, S_inv = torch.linalg.inv(A), torch.linalg.inv(S)
        if close(answer, A_inv @ G @ S_inv, rtol=1e-6, atol=1e-8)[0]:
            hint = ("that is the paper's printed vec(A⁻¹∇W S⁻¹) taken literally on PyTorch's (C_out, C_in + 1) "
                    "matrix: it runs because the layer is square, but it mixes a column-major Kronecker "
                    "product with a row-major identity")
        elif close(answer, expected.T, rtol=1e-6, atol=1e-8)[0]:
            hint = ("right numbers, transposed: that is A⁻¹GᵀS⁻¹, the paper's formula applied to ∇Wᵀ (the layout its "
                    "vec assumes); give it in PyTorch's layout, row i = output unit i, bias in the last column")
        elif close(answer, G, rtol=1e-6, atol=1e-8)[0]:
            hint = "that is the plain gradient G; apply the inverse of the K-FAC block"
        elif close(answer, S @ G @ A, rtol=1e-6, atol=1e-8)[0]:
            hint = "that multiplies by the block instead of solving with it: use the inverses"
    verdict = report(ok, what, hint)
    if ok:
        print("  (rlkit's KFAC.precondition with damping 0 returns exactly this: S⁻¹ G A⁻¹)")
    return verdict


# ---------------------------------------------------------------- exercise 3: convolution factors


def _conv_factor_entries() -> tuple[int, int]:
    c_in, c_out, k, s = CONV_LAYER
    kfac = KFAC(nn.Conv2d(c_in, c_out, k, stride=s))
    layer = next(iter(kfac.layers.values()))
    kfac.remove()
    return layer.d_in, layer.d_out


def check_conv_factor_entries(answer) -> bool:
    """Exercise 3: the number of entries of A plus S for the Nature CNN's first convolution."""
    c_in, c_out, k, s = CONV_LAYER
    what = f"entries of A plus S for a {k}×{k} convolution, {c_in} → {c_out} channels, with bias"
    if answer is None:
        return report(False, what, NOT_DONE)
    d_in, d_out = _conv_factor_entries()
    expected = d_in**2 + d_out**2
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report(False, what, "give a whole number")
    ok = value == expected
    hint = ""
    if not ok:
        fan_in = c_in * k * k
        if value == fan_in**2 + c_out**2:
            hint = "the bias adds a homogeneous coordinate to every patch: A is (C_in·k·k + 1)²"
        elif value == (d_in * d_out) ** 2:
            hint = "that is the dense Fisher block of the layer; K-FAC stores only the two factors"
        elif value in ((c_in + 1) ** 2 + c_out**2, c_in**2 + c_out**2):
            hint = "the input of a convolution's weights is a whole k×k patch of every input channel"
        elif value == d_in**2:
            hint = "add the output factor S (C_out × C_out)"
        else:
            hint = "A is over one input patch plus the bias coordinate, S over the output channels"
    verdict = report(ok, what, hint)
    if ok:
        cnn = KFAC(NatureCNN())
        layer = cnn.layers["convs.0"]
        cnn.remove()
        print(f"  (rlkit's KFAC on NatureCNN: {layer!r}; the dense block would have {(d_in * d_out) ** 2:,} entries)")
    return verdict


# ---------------------------------------------------------------- exercise 4: two samples


def two_sample_problem(seed: int = 0) -> dict:
    """Two inputs through a seeded 3 → 4 → 3 tanh softmax network; for its first layer: the
    homogeneous inputs a_1, a_2 (length 4), the per-sample output factors S_1, S_2 (4×4, exact
    expectation at batch size 1), the exact Fisher block F_ℓ on the two-sample batch and the
    K-FAC block, both in the row-major order [W.reshape(-1), b] (16×16)."""
    net = seeded_mlp([3, 4, 3], seed=seed)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    one = [exact_kfac(net, x[i : i + 1]).layers["0"] for i in range(2)]
    _, blocks, _ = kfac_blocks(net, x)
    exact, kfac_block = blocks["0"]
    a = [torch.cat([x[i], torch.ones(1, dtype=x.dtype)]) for i in range(2)]
    return {"a": a, "S": [layer.S for layer in one], "exact": exact, "kfac": kfac_block, "model": net}


def check_two_sample_constant(answer) -> bool:
    """Exercise 4: c in F_ℓ − A ⊗ S = c (a₁a₁ᵀ − a₂a₂ᵀ) ⊗ (S₁ − S₂) for a batch of two inputs."""
    what = "the constant c in (exact block) − (K-FAC block) = c·(a₁a₁ᵀ − a₂a₂ᵀ) ⊗ (S₁ − S₂), N = 2"
    if answer is None:
        return report(False, what, NOT_DONE)
    ok, hint = close(answer, 0.25, rtol=1e-9, atol=0.0)
    if not ok:
        if close(answer, 0.5, rtol=1e-9, atol=0.0)[0]:
            hint = "A and S are each a mean of two terms: the Kronecker product of two means brings ½·½"
        elif close(answer, -0.25, rtol=1e-9, atol=0.0)[0]:
            hint = "sign: the exact block is the mean of products, K-FAC the product of means"
        elif close(answer, 1.0, rtol=1e-9, atol=0.0)[0] or close(answer, 0.0, rtol=1e-9, atol=0.0)[0]:
            hint = "expand ½(a₁⊗S₁ + a₂⊗S₂) − ¼(a₁ + a₂)⊗(S₁ + S₂) (aᵢ short for aᵢaᵢᵀ)"
    verdict = report(ok, what, hint)
    if ok:
        p = two_sample_problem()
        (a1, a2), (S1, S2) = p["a"], p["S"]
        delta = torch.kron(S1 - S2, torch.outer(a1, a1) - torch.outer(a2, a2))  # row-major: S ⊗ A order
        d_in = a1.numel()
        order = [i * d_in + j for i in range(S1.shape[0]) for j in range(d_in - 1)]
        order += [i * d_in + d_in - 1 for i in range(S1.shape[0])]
        delta = delta[order][:, order]
        gap = float((p["exact"] - p["kfac"] - 0.25 * delta).abs().max())
        print(f"  (rlkit on a seeded two-input example: max |F_ℓ − A⊗S − ¼ Δa⊗ΔS| < 1e-12: {gap < 1e-12})")
    return verdict
