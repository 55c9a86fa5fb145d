"""Per-counterfactual metrics of the evaluation stage (method 6.4-6.7).

All functions work on plain tensors (``(n_samples, n_features)``, model-input scale) and compute in
float64; they know nothing about files or the sampling protocol (``protocol.py``).
"""

from __future__ import annotations

import numpy as np
import torch

# Rows per chunk in the distance computations; bounds the working memory of IP / MMD.
IP_CHUNK = 4096
MMD_GROUP_CHUNK = 64


# ---- validity, cost, redundancy (6.4, 6.7) --------------------------------------------------------

@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """arg-max class of ``model`` for every row of ``x`` (chunked, no autograd)."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([model(x[i:i + chunk]).argmax(1) for i in range(0, len(x), chunk)])


def validity(model: torch.nn.Module, x_cf: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """valid = argmax M(x') == t (method 6.4); bool per row."""
    return predict(model, x_cf) == target


def cost(x_cf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 distance between counterfactual and factual (method 6.7); float64 per row."""
    return (x_cf.double() - x.double()).abs().sum(1)


def redundancy(x_cf: torch.Tensor, x: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
    """Fraction of features with |x'_d - x_d| < tol (method 6.7); float64 per row."""
    return ((x_cf.double() - x.double()).abs() < tol).double().mean(1)


# ---- IP (6.5) ------------------------------------------------------------------------------------

class L1MeanDistance:
    """mean_r ||x - r||_1 over a fixed reference set R, exactly and in O(n D log |R|).

    Per feature, mean_r |x_d - r_d| = (k x_d - S_k + (S - S_k) - (m - k) x_d) / m with the reference
    values sorted, k = #{r_d <= x_d}, S_k their sum and S the total; summing over features gives the
    mean L1 distance. This equals ``torch.cdist(x, R, p=1).mean(1)`` (tested) without the n x |R|
    distance matrix, so memory is O(chunk x D) and MNIST's 25,000 x 1,000 x 784 takes seconds.
    """

    def __init__(self, reference: torch.Tensor):
        if reference.ndim != 2 or len(reference) == 0:
            raise ValueError("reference set must be a non-empty (m, D) tensor")
        ref = reference.double()
        self.m = ref.shape[0]
        self.sorted_t = ref.sort(0).values.T.contiguous()            # (D, m) ascending per feature
        zeros = torch.zeros(self.sorted_t.shape[0], 1, dtype=torch.float64)
        self.csum = torch.cat([zeros, self.sorted_t.cumsum(1)], 1)   # (D, m + 1) prefix sums

    def __call__(self, x: torch.Tensor, chunk: int = IP_CHUNK) -> torch.Tensor:
        out = torch.empty(len(x), dtype=torch.float64)
        total = self.csum[:, -1]
        for i in range(0, len(x), chunk):
            xc = x[i:i + chunk].double().T.contiguous()               # (D, c)
            k = torch.searchsorted(self.sorted_t, xc, right=True)     # (D, c)
            below = self.csum.gather(1, k)
            s = k * xc - below + (total[:, None] - below) - (self.m - k) * xc
            out[i:i + chunk] = s.sum(0) / self.m
        return out


def implausibility(x_cf: torch.Tensor, reference: torch.Tensor, chunk: int = IP_CHUNK) -> torch.Tensor:
    """IP(x') = mean over the reference rows of ||x' - r||_1 (method 6.5); float64 per row."""
    return L1MeanDistance(reference)(x_cf, chunk)


def implausibility_by_target(x_cf: torch.Tensor, target: torch.Tensor,
                             references: dict[int, "torch.Tensor | L1MeanDistance"]) -> torch.Tensor:
    """IP of every row against the reference set of its own target class (NaN where none is given).

    ``references`` maps a class to its reference rows or to a prepared ``L1MeanDistance``.
    """
    out = torch.full((len(x_cf),), float("nan"), dtype=torch.float64)
    for t, ref in references.items():
        rows = (target == t).nonzero().squeeze(1)
        if len(rows):
            dist = ref if isinstance(ref, L1MeanDistance) else L1MeanDistance(ref)
            out[rows] = dist(x_cf[rows])
    return out


# Counterfactuals per draw block of ``implausibility_resampled`` (fixed, so that the draws do not depend
# on the memory budget) and elements of the largest distance matrix it forms.
RESAMPLE_BLOCK = 1024
RESAMPLE_ELEMS = 1 << 22
RESAMPLE_GATHER_RATIO = 6


def balanced_per_class(n_eval: int, n_classes: int, n_balanced: int) -> int:
    """Rows per class of the class-balanced resample of min(N, n_balanced) evaluation rows.

    Julia's ``Int(round(n / n_classes))`` as in CE.jl ``subsample``; Python's round() also rounds
    half to even.
    """
    return max(1, int(round(min(n_eval, n_balanced) / n_classes)))


def resample_reference_draws(n: int, n_class_rows: int, m: int, n_draws: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-counterfactual reference draws for ``n`` counterfactuals of one target class.

    Returns (rows, picks): ``rows`` (n, m) are the target-class part of the class-balanced resample
    (``m`` uniform draws with replacement among the ``n_class_rows`` rows of that class), ``picks``
    (n, n_draws) the positions in ``rows`` of ``n_draws`` uniform draws with replacement among them.
    """
    rows = rng.integers(0, n_class_rows, size=(n, m))
    picks = rng.integers(0, m, size=(n, n_draws))
    return rows, picks


def implausibility_resampled(x_cf: torch.Tensor, target: torch.Tensor, X_eval: torch.Tensor,
                             y_eval: torch.Tensor, n_classes: int, n_balanced: int, n_draws: int,
                             rng: np.random.Generator, block: int = RESAMPLE_BLOCK,
                             max_elems: int = RESAMPLE_ELEMS) -> torch.Tensor:
    """IP with reference rows drawn afresh for every counterfactual, as the original computes it.

    For each row x' with target t (CE.jl ``find_potential_neighbours``): a class-balanced resample
    with replacement of min(N, n_balanced) evaluation rows, then ``n_draws`` draws with replacement
    among the resampled rows whose true label is t; IP(x') = mean over those draws of ||x' - r||_1.
    Only the target class's part of the resample can be drawn, so it is drawn alone
    (``resample_reference_draws``). ``rng`` (numpy Generator) is consumed in blocks of ``block`` rows
    in row order, class by class, so results depend only on the seed; memory is bounded by the draws
    of one block and ``max_elems`` distances per step. float64 per row; NaN for targets without
    evaluation rows.
    """
    out = torch.full((len(x_cf),), float("nan"), dtype=torch.float64)
    y_np = y_eval.numpy()
    m = balanced_per_class(len(y_np), n_classes, n_balanced)
    by_class = {c: X_eval[torch.from_numpy(np.flatnonzero(y_np == c))].double()
                for c in range(n_classes)}
    t_np = target.numpy()
    d = x_cf.shape[1]
    for b0 in range(0, len(x_cf), block):
        t_blk = t_np[b0:b0 + block]
        for c in np.unique(t_blk):
            sel = b0 + np.flatnonzero(t_blk == c)
            ref = by_class.get(int(c))
            if ref is None or len(ref) == 0:
                continue
            rows, picks = map(torch.from_numpy,
                              resample_reference_draws(len(sel), len(ref), m, n_draws, rng))
            # distances to the m resampled rows (batched cdist) or, cheaper per element, to all
            # N_t rows of the class and then picked; measured break-even near N_t = 6 m
            per_row = m * d if len(ref) > RESAMPLE_GATHER_RATIO * m else len(ref)
            step = max(1, max_elems // per_row)
            for i in range(0, len(sel), step):
                pos = torch.from_numpy(sel[i:i + step])
                x = x_cf[pos].double()
                if len(ref) > RESAMPLE_GATHER_RATIO * m:
                    dist = torch.cdist(x[:, None, :], ref[rows[i:i + step]], p=1)[:, 0]   # (s, m)
                    out[pos] = dist.gather(1, picks[i:i + step]).mean(1)
                else:
                    dist = torch.cdist(x, ref, p=1)                                   # (s, N_t)
                    out[pos] = dist.gather(1, rows[i:i + step].gather(1, picks[i:i + step])).mean(1)
    return out


# ---- IP* (6.6): unbiased MMD^2 with a Gaussian kernel --------------------------------------------

def _sq_dists(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Batched squared Euclidean distances (..., n, D) x (..., m, D) -> (..., n, m), float64, >= 0.

    ``b=None`` means b = a: the norms are then the Gram diagonal and self-distances are exactly 0.
    """
    a = a.double()
    if b is None:
        gram = a @ a.transpose(-1, -2)
        a2 = b2 = gram.diagonal(dim1=-2, dim2=-1)
    else:
        b = b.double()
        gram = a @ b.transpose(-1, -2)
        a2 = torch.linalg.vector_norm(a, dim=-1).square()
        b2 = torch.linalg.vector_norm(b, dim=-1).square()
    d = a2[..., :, None] + b2[..., None, :] - 2.0 * gram
    return d.clamp_min_(0.0)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor | None, length_scale: float) -> torch.Tensor:
    """k(u, v) = exp(-||u - v||^2 / (2 l^2)) for all pairs (batched); ``b=None``: b = a."""
    return torch.exp(-_sq_dists(a, b) / (2.0 * length_scale ** 2))


def mmd2_unbiased(X: torch.Tensor, Y: torch.Tensor, length_scale: float) -> float:
    """Unbiased MMD^2(X, Y) (method 6.6); NaN if either set has fewer than 2 rows."""
    n, m = len(X), len(Y)
    if n < 2 or m < 2:
        return float("nan")
    kxx = gaussian_kernel(X, None, length_scale)
    kyy = gaussian_kernel(Y, None, length_scale)
    kxy = gaussian_kernel(X, Y, length_scale)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def _masked_offdiag_mean(k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean_{i != j} k_ij over valid rows (mask) per group; k (G, n, n), mask (G, n)."""
    w = mask.double()
    pair = w[:, :, None] * w[:, None, :]
    total = (k * pair).sum((1, 2)) - (k.diagonal(dim1=1, dim2=2) * w).sum(1)
    n = w.sum(1)
    return total / (n * (n - 1))


# kernel entries per block of a large set's Y-Y term: a block and the temporaries of its distance
# and kernel (float64) stay near 130 MB, so MMD against every training row of a class (Adult:
# ~20,000 rows, eval.mmd.reference = train_all) fits the 2 GB a job may use
KERNEL_BLOCK = 1 << 22


def kernel_offdiag_mean(Y: torch.Tensor, length_scale: float, chunk: int | None = None) -> float:
    """mean_{i != j} k(y_i, y_j) for one (possibly large) set, in row chunks of ``chunk`` (default:
    as many rows as keep a block of the kernel at ``KERNEL_BLOCK`` entries)."""
    m = len(Y)
    if m < 2:
        return float("nan")
    chunk = chunk or max(1, KERNEL_BLOCK // m)
    total = 0.0
    for i in range(0, m, chunk):
        k = gaussian_kernel(Y[i:i + chunk], Y, length_scale)
        rows = torch.arange(len(k))
        total += float(k.sum() - k[rows, rows + i].sum())
    return total / (m * (m - 1))


def kernel_offdiag_means(Ys: list[torch.Tensor], length_scale: float,
                         group_chunk: int = MMD_GROUP_CHUNK) -> list[float]:
    """mean_{i != j} k(y_i, y_j) for many small sets at once (padded batches); NaN if |Y| < 2."""
    out = [float("nan")] * len(Ys)
    for s in range(0, len(Ys), group_chunk):
        sel = [g for g in range(s, min(len(Ys), s + group_chunk)) if len(Ys[g]) >= 2]
        if sel:
            ys, my = _pad([Ys[g] for g in sel])
            vals = _masked_offdiag_mean(gaussian_kernel(ys, None, length_scale), my)
            for g, v in zip(sel, vals.tolist()):
                out[g] = v
    return out


def mmd2_unbiased_groups(X: list[torch.Tensor], Y: list[torch.Tensor], length_scale: float,
                         yy: list[float] | None = None, group_chunk: int = MMD_GROUP_CHUNK,
                         max_padded_y: int = 2048) -> torch.Tensor:
    """Unbiased MMD^2 for many (X_g, Y_g) pairs at once; float64 (G,), NaN where |X_g| or |Y_g| < 2.

    Groups are processed ``group_chunk`` at a time, each chunk padded to its largest X and Y and
    evaluated with batched matrix products and masks (memory O(chunk * n * m) for n, m <= 100 by
    default). ``yy`` optionally supplies the Y-Y term per group (computed once when many groups share a
    large Y, as with ``eval.mmd.reference: train_all``); Y sets larger than ``max_padded_y`` get their
    cross term in Y-chunks instead of padding.
    """
    G = len(X)
    if len(Y) != G or (yy is not None and len(yy) != G):
        raise ValueError("X, Y (and yy) must list the same number of groups")
    out = torch.full((G,), float("nan"), dtype=torch.float64)
    for s in range(0, G, group_chunk):
        sel = [g for g in range(s, min(G, s + group_chunk)) if len(X[g]) >= 2 and len(Y[g]) >= 2]
        if not sel:
            continue
        xs, mx = _pad([X[g] for g in sel])
        xx = _masked_offdiag_mean(gaussian_kernel(xs, None, length_scale), mx)
        if max(len(Y[g]) for g in sel) <= max_padded_y:
            ys, my = _pad([Y[g] for g in sel])
            kxy = gaussian_kernel(xs, ys, length_scale)
            pair = mx.double()[:, :, None] * my.double()[:, None, :]
            xy = (kxy * pair).sum((1, 2)) / (mx.sum(1) * my.sum(1)).double()
            yyv = (_masked_offdiag_mean(gaussian_kernel(ys, None, length_scale), my) if yy is None
                   else torch.tensor([yy[g] for g in sel], dtype=torch.float64))
        else:
            xy = torch.tensor([_cross_mean(X[g], Y[g], length_scale) for g in sel],
                              dtype=torch.float64)
            yyv = torch.tensor([yy[g] if yy is not None else kernel_offdiag_mean(Y[g], length_scale)
                                for g in sel], dtype=torch.float64)
        out[torch.tensor(sel)] = xx + yyv - 2.0 * xy
    return out


def _pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length (n_g, D) sets into (G, max n, D) float64 plus a (G, max n) row mask."""
    n = max(len(r) for r in rows)
    d = rows[0].shape[1]
    out = torch.zeros(len(rows), n, d, dtype=torch.float64)
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
        mask[i, :len(r)] = True
    return out, mask


def _cross_mean(X: torch.Tensor, Y: torch.Tensor, length_scale: float, chunk: int = 4096) -> float:
    """mean_{i, j} k(x_i, y_j), chunked over Y."""
    total = 0.0
    for i in range(0, len(Y), chunk):
        total += float(gaussian_kernel(X, Y[i:i + chunk], length_scale).sum())
    return total / (len(X) * len(Y))
