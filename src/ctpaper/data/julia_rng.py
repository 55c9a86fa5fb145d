"""Julia 1.11's default random stream, ``Xoshiro(seed)``, reproduced bit for bit (julia_rng.md part a).

What the original drew its synthetic data with: SHA-256 seeding (a1), the xoshiro256++ step (a2),
scalar and 8-lane bulk Float64 / UInt64 draws (a3, a4), the normal and exponential ziggurats (a5) and
``randperm`` / ``randcycle`` (a6). Integer ranges (a7) are left out: only steps that are not
reproduced (the pool's train/validation split, MNIST's resample) use them. Scalar draws use Python
integers; the bulk path runs its 8 lanes as many sub-streams at once in numpy uint64 arithmetic,
started by GF(2) jump-ahead (the xoshiro state update is linear over GF(2)), and is tested equal to
the plain lane-by-lane loop ``lane_outputs_sequential``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

MASK64 = (1 << 64) - 1
MASK52 = (1 << 52) - 1
TWO_M53 = 2.0 ** -53

# a4: the SIMD fill forks 8 lanes; these multipliers scramble the 32 fork draws into lane states.
N_LANES = 8
FORK_MULTIPLIERS = (0x02011CE34BCE797F, 0x5A94851FB48A6E05, 0x3688CF5D48899FA7, 0x867B4BB4C42E5661)
# a5: randn!/randexp! on arrays with fewer elements draw one scalar at a time.
ZIGGURAT_BULK_MIN = 7


def _load_tables() -> dict:
    raw = json.loads((Path(__file__).with_name("ziggurat_tables.json")).read_text())
    tables = {k: [int(h, 16) for h in raw[k]] for k in ("ki", "ke")}
    tables.update({k: [float.fromhex(h) for h in raw[k]] for k in ("wi", "fi", "we", "fe")})
    tables["nor_r"] = float.fromhex(raw["ziggurat_nor_r"])
    tables["exp_r"] = float.fromhex(raw["ziggurat_exp_r"])
    return tables


_T = _load_tables()
KI, WI, FI = _T["ki"], _T["wi"], _T["fi"]
KE, WE, FE = _T["ke"], _T["we"], _T["fe"]
NOR_R, EXP_R = _T["nor_r"], _T["exp_r"]
NOR_INV_R = 1.0 / NOR_R
_KI, _WI = np.array(KI, dtype=np.int64), np.array(WI)
_KE, _WE = np.array(KE, dtype=np.int64), np.array(WE)


def seed_state(seed: int) -> tuple[int, int, int, int]:
    """State (s0, s1, s2, s3) of ``Xoshiro(seed)``: SHA-256 of the seed's 32-bit words (a1)."""
    negative = seed < 0
    n = ~seed if negative else seed
    data = bytearray()
    while True:
        data += (n & 0xFFFFFFFF).to_bytes(4, "little")
        n >>= 32
        if n == 0:
            break
    if negative:
        data.append(0x01)
    digest = hashlib.sha256(bytes(data)).digest()
    return tuple(int.from_bytes(digest[8 * i: 8 * i + 8], "little") for i in range(4))


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64


def _step(s0: int, s1: int, s2: int, s3: int) -> tuple[int, int, int, int, int]:
    """One xoshiro256++ step (a2): the output of the state before the update, then the new state."""
    out = (_rotl((s0 + s3) & MASK64, 23) + s0) & MASK64
    t = (s1 << 17) & MASK64
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    return out, s0, s1, s2, _rotl(s3, 45)


# ---- 8-lane bulk path (a4) --------------------------------------------------------------------

def _step_lanes(s: np.ndarray) -> np.ndarray:
    """One xoshiro256++ step of every column of ``s`` (4 x L uint64, updated in place); the outputs."""
    s0, s1, s2, s3 = s
    x = s0 + s3
    out = ((x << np.uint64(23)) | (x >> np.uint64(41))) + s0
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3[:] = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    return out


def lane_outputs_sequential(state: np.ndarray, n_steps: int) -> np.ndarray:
    """Reference: ``n_steps`` outputs of each of the L lanes in ``state`` (4 x L), shape (n_steps, L)."""
    s = np.array(state, dtype=np.uint64)
    out = np.empty((n_steps, s.shape[1]), dtype=np.uint64)
    for t in range(n_steps):
        out[t] = _step_lanes(s)
    return out


# Jump-ahead: the state update is linear over GF(2). A linear map is stored as 256 states (256 x 4
# uint64): row j is the image of the state with only bit j set (bit i of word w is bit 64 w + i).

def _apply(jump: np.ndarray, states: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The linear map ``jump`` applied to each row of ``states`` (L x 4): XOR of the selected rows,
    ``chunk`` rows at a time (8 KB of temporaries per row)."""
    out = np.empty((len(states), 4), dtype=np.uint64)
    for lo in range(0, len(states), chunk):
        part = np.ascontiguousarray(states[lo: lo + chunk], dtype="<u8").view(np.uint8)
        bits = np.unpackbits(part, axis=1, bitorder="little").astype(bool)
        out[lo: lo + chunk] = np.bitwise_xor.reduce(
            np.where(bits[:, :, None], jump[None], np.uint64(0)), axis=1)
    return out


@lru_cache(maxsize=None)
def _jump(log2_k: int) -> np.ndarray:
    """The state update of 2**log2_k steps: one step for 0, else the square of the previous one."""
    if log2_k == 0:
        basis = np.zeros((4, 256), dtype=np.uint64)
        for j in range(256):
            basis[j // 64, j] = np.uint64(1 << (j % 64))
        _step_lanes(basis)
        return basis.T.copy()
    half = _jump(log2_k - 1)
    return _apply(half, half)


def _substreams(state: np.ndarray, n_steps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Outputs (n_steps, L) of the L lanes in ``state`` (4 x L), as m x L sub-streams of k steps each
    (k the power of two nearest below sqrt(n_steps)); sub-stream c starts at the lane state advanced
    by c k steps. Also returns those start states for c = 0..m (m + 1, 4, L) and k."""
    n_lanes = state.shape[1]
    log2_k = max(0, math.isqrt(n_steps).bit_length() - 1)
    k = 1 << log2_k
    m = -(-n_steps // k)
    starts, level = state.T[None], log2_k  # (r, L, 4): advanced by 0, k, ..., (r-1) k steps
    while len(starts) < m + 1:  # doubling: the next r starts are the first r advanced by r k steps
        advanced = _apply(_jump(level), starts.reshape(-1, 4)).reshape(starts.shape)
        starts = np.concatenate([starts, advanced])
        level += 1
    starts = starts[: m + 1].transpose(0, 2, 1)  # (m + 1, 4, L)
    s = starts[:m].transpose(1, 0, 2).reshape(4, m * n_lanes).copy()  # column c * L + lane
    out = np.empty((k, m * n_lanes), dtype=np.uint64)
    for t in range(k):
        out[t] = _step_lanes(s)
    out = out.reshape(k, m, n_lanes).transpose(1, 0, 2).reshape(m * k, n_lanes)[:n_steps]
    return out, starts, k


def lane_outputs(state: np.ndarray, n_steps: int) -> np.ndarray:
    """The same as ``lane_outputs_sequential``, computed by jump-ahead sub-streams."""
    return _substreams(np.asarray(state, dtype=np.uint64), n_steps)[0]


# ---- the generator -----------------------------------------------------------------------------

class Xoshiro:
    """Julia's ``Xoshiro(seed)`` (xoshiro256++). Arrays are returned flat in column-major order."""

    def __init__(self, seed: int):
        self.s0, self.s1, self.s2, self.s3 = seed_state(seed)

    @property
    def state(self) -> tuple[int, int, int, int]:
        return self.s0, self.s1, self.s2, self.s3

    def next_u64(self) -> int:
        """``rand(rng, UInt64)``."""
        out, self.s0, self.s1, self.s2, self.s3 = _step(self.s0, self.s1, self.s2, self.s3)
        return out

    def _peek(self, n: int) -> tuple[list[int], Callable[[int], None]]:
        """The next n outputs of ``next_u64`` without advancing, and ``advance(p)``, which moves the
        state on by p <= n steps (from the nearest jump-ahead start, then p mod k scalar steps)."""
        state = np.array(self.state, dtype=np.uint64)[:, None]
        out, starts, k = _substreams(state, n)

        def advance(p: int) -> None:
            s = tuple(int(w) for w in starts[p // k, :, 0])
            for _ in range(p % k):
                s = _step(*s)[1:]
            self.s0, self.s1, self.s2, self.s3 = s

        return out[:, 0].tolist(), advance

    def rand(self) -> float:
        """``rand(rng)``: 53 random bits in [0, 1) (a3)."""
        return (self.next_u64() >> 11) * TWO_M53

    def rand_u64_array(self, n: int) -> np.ndarray:
        """``rand!(rng, Vector{UInt64}(undef, n))`` (a4): 8 forked lanes for the full 8-word blocks,
        the parent for the remaining n mod 8 words (and for all of them when n < 8)."""
        out = np.empty(n, dtype=np.uint64)
        n_blocks = n // N_LANES
        if n_blocks:
            fork = np.array([self.next_u64() for _ in range(4 * N_LANES)], dtype=np.uint64)
            lanes = fork.reshape(4, N_LANES) * np.array(FORK_MULTIPLIERS, dtype=np.uint64)[:, None]
            # below ~64 steps per lane the jump-ahead set-up costs more than it saves
            fill = lane_outputs if n_blocks > 64 else lane_outputs_sequential
            out[: n_blocks * N_LANES] = fill(lanes, n_blocks).reshape(-1)
        for i in range(n_blocks * N_LANES, n):
            out[i] = self.next_u64()
        return out

    def rand_array(self, n: int) -> np.ndarray:
        """``rand(rng, n)`` / ``rand!(rng, A)`` for n Float64 (a4)."""
        return (self.rand_u64_array(n) >> np.uint64(11)).astype(np.float64) * TWO_M53

    # normal ziggurat (a5)
    def _randn_unlikely(self, idx: int, rabs: int, x: float) -> float:
        if idx == 0:  # tail
            while True:
                xx = -NOR_INV_R * math.log1p(-self.rand())
                yy = -math.log1p(-self.rand())
                if yy + yy > xx * xx:
                    return -NOR_R - xx if (rabs >> 8) & 1 else NOR_R + xx
        if (FI[idx - 1] - FI[idx]) * self.rand() + FI[idx] < math.exp(-0.5 * x * x):
            return x  # wedge
        return self.randn()

    def _randn_from(self, r: int) -> float:
        """Z(r): one normal from the 52-bit integer r, drawing more from ``self`` when rejected."""
        r &= MASK52
        rabs = r >> 1
        idx = rabs & 0xFF
        x = float(-rabs if r & 1 else rabs) * WI[idx]
        if rabs < KI[idx]:
            return x
        return self._randn_unlikely(idx, rabs, x)

    def randn(self) -> float:
        """``randn(rng)``."""
        return self._randn_from(self.next_u64() >> 12)

    def randn_array(self, n: int) -> np.ndarray:
        """``randn(rng, n)`` / ``randn!(rng, A)``: raw bulk words, then Z in element order; the rejected
        elements draw from the parent after the bulk fill."""
        if n < ZIGGURAT_BULK_MIN:
            return np.array([self.randn() for _ in range(n)], dtype=np.float64)
        r = (self.rand_u64_array(n) >> np.uint64(12)).astype(np.int64)
        rabs = r >> 1
        idx = rabs & 0xFF
        x = np.where((r & 1) == 1, -rabs, rabs).astype(np.float64) * _WI[idx]
        for i in np.flatnonzero(rabs >= _KI[idx]):
            x[i] = self._randn_unlikely(int(idx[i]), int(rabs[i]), float(x[i]))
        return x

    # exponential ziggurat (a5, used by the doctests only)
    def _randexp_unlikely(self, idx: int, x: float) -> float:
        if idx == 0:
            return EXP_R - math.log1p(-self.rand())
        if (FE[idx - 1] - FE[idx]) * self.rand() + FE[idx] < math.exp(-x):
            return x
        return self.randexp()

    def randexp(self) -> float:
        """``randexp(rng)``."""
        ri = (self.next_u64() >> 12) & MASK52
        idx = ri & 0xFF
        x = float(ri) * WE[idx]
        return x if ri < KE[idx] else self._randexp_unlikely(idx, x)

    def randexp_array(self, n: int) -> np.ndarray:
        """``randexp(rng, n)`` / ``randexp!(rng, A)``, structured like ``randn_array``."""
        if n < ZIGGURAT_BULK_MIN:
            return np.array([self.randexp() for _ in range(n)], dtype=np.float64)
        ri = (self.rand_u64_array(n) >> np.uint64(12)).astype(np.int64)
        idx = ri & 0xFF
        x = ri.astype(np.float64) * _WE[idx]
        for i in np.flatnonzero(ri >= _KE[idx]):
            x[i] = self._randexp_unlikely(int(idx[i]), float(x[i]))
        return x

    # permutations (a6)
    def _inside_out(self, n: int, shift: int) -> np.ndarray:
        """Inside-out Fisher-Yates: for i = 2..n, j = 1 + v with v uniform on 0..i-shift, drawn by
        rejection of ((rand(UInt64) >> 12) & mask); a[i] = a[j], a[j] = i. The ~1.4 n draws are
        read from peeked blocks of n + 64 outputs of the stream."""
        a = [0] * (n + 1)
        if n:
            a[1] = 1
        mask = 3
        block = n + 64
        draws, advance = self._peek(block)
        p = 0
        for i in range(2, n + 1):
            bound = i - shift
            while True:
                if p == block:
                    advance(p)
                    draws, advance = self._peek(block)
                    p = 0
                v = (draws[p] >> 12) & mask
                p += 1
                if v <= bound:
                    break
            j = 1 + v
            if j != i:
                a[i] = a[j]
            a[j] = i
            if i == mask + 1:
                mask = 2 * mask + 1
        advance(p)
        return np.array(a[1:], dtype=np.int64)

    def randperm(self, n: int) -> np.ndarray:
        """``randperm(rng, n)``: a uniform permutation of 1..n."""
        return self._inside_out(n, shift=1)

    def randcycle(self, n: int) -> np.ndarray:
        """``randcycle(rng, n)``: a uniform n-cycle of 1..n (Sattolo's variant, v <= i-2)."""
        return self._inside_out(n, shift=2)
