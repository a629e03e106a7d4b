"""Float64-reference fuzz of every CPU path of APALU in float32: values and gradients for x, a, b.

Each path gets ``N = 2**20`` float32 inputs (random bit patterns over the whole float32 range,
subnormals and ±0 included; a dense part in [-20, 20] and [-110, 110]; huge |x| up to 3.4e38)
with a, b log-uniform in [1e-6, 10] *per element* (a 1-D input with one parameter per element
is the per-channel layout, so the gradient of a and b is one term per element and is checked
element by element), and an incoming gradient g of random sign and magnitude. The reference is
computed independently here, in numpy float64.

Bounds. For every finite result, ``|got − want| <= U·ulp(want) + S·2⁻¹⁴⁹`` (ulp: the float32
spacing at the float64 value, 2⁻¹⁴⁹ for subnormals; a result of ±inf counts as ±2¹²⁸, the next
binade); where the float64 value lies beyond float32 (rounds to inf), the result must be that inf.
U (:data:`ULPS`) is the ulp bound on normal results; S (:data:`SUBNORMAL_STEPS`) is an absolute
allowance that only matters near underflow, so subnormal results are within (U + S)·2⁻¹⁴⁹. It is
needed where an intermediate underflows before it is scaled up: eˣ is rounded to a subnormal and
then multiplied by b·g (up to 40 here) in every path's grad x, and the eager path's SiLU term of
a subnormal x.

Measured on this machine (AVX2, torch 2.13.0+cpu), N per-element inputs plus the scalar-parameter
test; for (value, grad x, grad a, grad b): max ulp where |want| >= 2⁻¹⁰⁰ / max absolute error on
subnormal results in units of 2⁻¹⁴⁹ / the S needed with the U below:

=====================  ========================  =========================  ====================
path                   ulp                       subnormal results          S needed
=====================  ========================  =========================  ====================
reference (autograd)   2.39, 8.15, 2.40, 1.51    1.25, 10.60, 0.94, 0.50    0, 1.60, 0, 0
ATen eager, no kernel  2.43, 9.25, 2.60, 1.51    4.00, 12.60, 1.85, 0.50    1.00, 2.60, 0, 0
C++ kernel             2.40, 3.22, 1.73, 2.12    1.25, 10.27, 1.25, 0.50    0, 6.77, 0, 0
compiled, kernel       2.35, 2.70, 1.73, 2.12    1.25, 10.27, 1.25, 0.50    0, 6.77, 0, 0
compiled, inductor     2.92, 2.70, 2.24, 3.11    1.25, 10.27, 1.25, 0.50    0, 6.77, 0, 0
=====================  ========================  =========================  ====================

The grad-x errors of the reference and the eager path (8-9 ulp near x ≈ 10) come from ATen's
sigmoid and SiLU backward, which form 1 − σ by subtraction; the kernel and inductor paths use
e·σ. Grad b of the inductor path: ``exp(t) − 1`` below t = −1/4 (3 ulp, see
``apalu.functional._expm1_fused``). The bounds below are set slightly above these.

The scalar-parameter code (ATen's ``elu`` form on the eager path, the kernel's main loop) is
checked element by element for values and grad x, and the sums that are the grads of scalar a
and b within :data:`SUM_REL` of Σ|term| (measured at most 3.2e-8). The compiled paths run the same
formulas (the compiled kernel path calls the same C++ kernel), so they are fuzzed with per-element
parameters only, to keep compilation to one graph each. Named cases (:data:`NAMED`, the first rows,
checked one by one): the spurious overflow of the issue (a = 1e-6, x = 3e38: true value ≈ 6e32,
not inf), a true overflow, ±0, subnormal inputs and results, and eˣ near and past underflow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import apalu._ext as ext
from apalu.functional import apalu, apalu_reference, apalu_without_kernel

K = 1.702
N = 2**20
TINY = 2.0**-126  # smallest normal float32
SUB = 2.0**-149  # smallest subnormal float32
BIG = 2.0**128  # float32 rounds to inf from BIG·(1 − 2⁻²⁵) = MAX + half an ulp on

# per path, for (value, grad x, grad a, grad b): U, the float32 ulp bound, and S, the absolute
# allowance near underflow in units of 2⁻¹⁴⁹ (see the module docstring for what was measured)
ULPS = {
    "reference": (3, 9, 3, 2),
    "eager": (3, 10, 3, 2),
    "kernel": (3, 4, 2.5, 2.5),
    "compiled kernel": (3, 4, 2.5, 2.5),
    "compiled inductor": (3.5, 3.5, 3, 3.5),
}
SUBNORMAL_STEPS = {
    "reference": (1, 3, 1, 1),
    "eager": (2, 4, 1, 1),
    "kernel": (1, 8, 1, 1),
    "compiled kernel": (1, 8, 1, 1),
    "compiled inductor": (1, 8, 1, 1),
}


# ---------------------------------------------------------------------------------------------
# Inputs and the float64 reference (numpy only, independent of the package)
# ---------------------------------------------------------------------------------------------

NAMED = {
    # x, a, b, g
    "overflow a=1e-6 x=3e38": (3e38, 1e-6, 1.0, 1.0),
    "overflow a=1e-6 x=3.4e38": (3.4e38, 1e-6, 1.0, 1.0),
    "overflow a=0.5 x=3e38 g=1e-3": (3e38, 0.5, 1.0, 1e-3),
    "true overflow a=10 x=3e38": (3e38, 10.0, 1.0, 1.0),
    "x=max float32": (float(np.finfo(np.float32).max), 0.25, 1.0, 0.25),
    "x=-3e38": (-3e38, 1.0, 2.0, 1.0),
    "x=+0": (0.0, 1.3, 0.7, 1.0),
    "x=-0": (-0.0, 1.3, 0.7, 1.0),
    "x=smallest subnormal": (SUB, 1.0, 1.0, 1.0),
    "x=-smallest subnormal": (-SUB, 1.0, 1.0, 1.0),
    "x=subnormal a=1e-6 (value subnormal)": (2.0**-130, 1e-6, 1.0, 1.0),
    "x=-subnormal b=1e-6": (-(2.0**-128), 1.0, 1e-6, 1.0),
    "x=largest subnormal": (TINY - SUB, 3.0, 3.0, 1.0),
    "x=-1e-8 (near 0-)": (-1e-8, 1.0, 1.0, 1.0),
    "x=-88 (e^x subnormal)": (-88.0, 1.0, 1.0, 1.0),
    "x=-104 (e^x underflows)": (-104.0, 1.0, 1.0, 1.0),
    "g subnormal": (2.0, 1.0, 1.0, 2.0**-140),
}


def _inputs(seed: int = 0):
    """(x, a, b, g) float32 numpy arrays of length N; the named cases first."""
    rng = np.random.default_rng(seed)
    named = np.array(list(NAMED.values()), dtype=np.float64).astype(np.float32)
    n = N - len(named)
    # random bit patterns: sign, biased exponent 0..254 (0 = ±0 and subnormals), mantissa
    bits = (rng.integers(0, 2, n, dtype=np.uint32) << 31) | (rng.integers(0, 255, n, dtype=np.uint32) << 23) \
        | rng.integers(0, 2**23, n, dtype=np.uint32)
    x = bits.view(np.float32).copy()
    part = rng.permutation(n)
    q = n // 10
    x[part[:2 * q]] = rng.uniform(-20, 20, 2 * q)
    x[part[2 * q:3 * q]] = rng.uniform(-110, 110, q)
    x[part[3 * q:4 * q]] = rng.uniform(1e38, 3.4e38, q) * rng.choice([-1.0, 1.0], q)
    x[part[4 * q:5 * q]] = rng.uniform(-1e-6, 1e-6, q)  # near 0±
    a = np.exp(rng.uniform(np.log(1e-6), np.log(10.0), n)).astype(np.float32)
    b = np.exp(rng.uniform(np.log(1e-6), np.log(10.0), n)).astype(np.float32)
    g = (np.exp2(rng.uniform(-24, 2, n)) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    cat = lambda col, v: np.concatenate([named[:, col], v]).astype(np.float32)  # noqa: E731
    return cat(0, x), cat(1, a), cat(2, b), cat(3, g)


def reference(x, a, b, g):
    """Float64 (value, g·∂f/∂x, g·∂f/∂a, g·∂f/∂b) per element; right-hand derivative at 0."""
    x, a, b, g = (np.asarray(v, dtype=np.float64) for v in (x, a, b, g))
    pos = x >= 0
    xp, xn = np.maximum(x, 0.0), np.minimum(x, 0.0)
    e = np.exp(-K * xp)  # <= 1: never overflows
    s = 1.0 / (1.0 + e)  # σ(kx)
    sm = e / (1.0 + e)  # σ(−kx) = 1 − σ(kx), without cancellation
    with np.errstate(invalid="ignore"):  # kx·σ(−kx) is 0 once e underflows, also at x = inf
        slope_tail = np.where(e > 0, K * xp * s * sm, 0.0)
    y = np.where(pos, a * xp * (1 + s), b * np.expm1(xn))
    gx = g * np.where(pos, a * (1 + s + slope_tail), b * np.exp(xn))
    ga = np.where(pos, g * xp * (1 + s), 0.0)
    gb = np.where(pos, 0.0, g * np.expm1(xn))
    return y, gx, ga, gb


def errors(got, want, ulps):
    """Error of float32 results ``got`` against float64 ``want``: (max error in ulp where
    |want| >= 2⁻¹⁰⁰, max absolute error on subnormal results and max of (error − ulps·ulp(want))
    over all finite results, both in units of 2⁻¹⁴⁹).

    ulp(w) is the float32 spacing at w; ±inf counts as ±2¹²⁸, the next binade. Results whose
    float64 value rounds to inf in float32 must be that inf exactly.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert not np.isnan(got).any(), "NaN for a finite input"
    aw = np.abs(want)
    over = aw >= BIG * (1 - 2.0**-25)  # rounds to inf in float32
    assert np.all(got[over] == np.sign(want[over]) * np.inf), "a result beyond float32 is not inf"
    w, aw, got = want[~over], aw[~over], got[~over]
    spurious = np.isinf(got) & (aw < BIG / 4)  # inf where the true value is far inside float32
    assert not spurious.any(), f"{spurious.sum()} spurious overflows, e.g. inf for {w[spurious][0]:.4g}"
    err = np.abs(np.clip(got, -BIG, BIG) - w)
    ulp = np.exp2(np.floor(np.log2(np.maximum(aw, TINY))) - 23)
    far, sub = aw >= 2.0**-100, aw < TINY
    return (float((err[far] / ulp[far]).max(initial=0.0)), float((err[sub] / SUB).max(initial=0.0)),
            float(((err - ulps * ulp) / SUB).max(initial=0.0)))


# ---------------------------------------------------------------------------------------------
# The paths
# ---------------------------------------------------------------------------------------------


def _need_kernel():
    if not ext.available():
        pytest.skip(ext.status())


def _compile(fn):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, dynamic=False)


PATHS = {
    "reference": lambda: apalu_reference,
    "eager": lambda: apalu_without_kernel,
    "kernel": lambda: (_need_kernel(), apalu)[1],
    "compiled kernel": lambda: (_need_kernel(), _compile(apalu))[1],
    "compiled inductor": lambda: _compile(apalu_without_kernel),
}


def _run(fn, x, a, b, g):
    leaves = [torch.from_numpy(v).requires_grad_() for v in (x, a, b)]
    y = fn(*leaves)
    y.backward(torch.from_numpy(g))
    return [y.detach().numpy()] + [t.grad.numpy() for t in leaves]


@pytest.fixture(scope="module")
def data():
    x, a, b, g = _inputs()
    return (x, a, b, g), reference(x, a, b, g)


OUTPUTS = ("value", "grad x", "grad a", "grad b")


def _check(path, got, want, label="", which=(0, 1, 2, 3)):
    """Outputs ``which`` (indices into OUTPUTS) within ULPS·ulp(want) + SUBNORMAL_STEPS·2⁻¹⁴⁹."""
    report = []
    for j in which:
        what, bound, steps = OUTPUTS[j], ULPS[path][j], SUBNORMAL_STEPS[path][j]
        ulp, sub, excess = errors(got[j], want[j], bound)
        report.append(f"{what}: {ulp:.2f} ulp, subnormal {sub:.2f}, excess {excess:.2f}")
        assert ulp <= bound and excess <= steps, (
            f"{path}{label} {what}: {ulp:.2f} ulp (bound {bound}); error beyond {bound} ulp "
            f"{excess:.2f} x 2^-149 (bound {steps}; subnormal results: {sub:.2f})")
    return report


@pytest.mark.parametrize("path", list(PATHS))
def test_fuzz_against_float64_reference(path, data):
    (x, a, b, g), want = data
    got = _run(PATHS[path](), x, a, b, g)  # per-element a and b: the per-channel layout, C = N
    print(path, "; ".join(_check(path, got, want)))
    # the named cases, one by one (they are the first rows), so a failure names its case
    for i, name in enumerate(NAMED):
        _check(path, [u[i:i + 1] for u in got], [v[i:i + 1] for v in want], f" [{name}]")
    # the case: a·(x + x·σ) fits although x + x·σ does not
    y0 = float(got[0][0])
    assert abs(y0 - 2 * float(np.float32(1e-6)) * float(np.float32(3e38))) <= 1e-6 * y0, \
        f"{path}: f(3e38) with a = 1e-6 is {y0}"
    for row in (list(NAMED).index("x=smallest subnormal"), list(NAMED).index("x=-smallest subnormal")):
        assert got[0][row] != 0 or want[0][row] == 0  # a subnormal input keeps its value


# scalar a and b take other code: ATen's elu form on the eager path, the kernel's main loop
SCALAR_PAIRS = [(1e-6, 1e-6), (1e-6, 10.0), (10.0, 1e-6), (10.0, 10.0), (1.0, 1.0), (0.3, 3.0),
                (2.0 / 3.0, 1.0), (3e-3, 0.05)]
SCALAR_PATHS = ["reference", "eager", "kernel"]  # the compiled paths run the same formulas
SUM_REL = 1e-7  # Σ error of the parameter gradients, relative to Σ|term| (float32 partial sums)


@pytest.mark.parametrize("path", SCALAR_PATHS)
def test_scalar_parameters_against_float64_reference(path, data):
    (x, _, _, g), _ = data
    fn = PATHS[path]()
    g = g * np.float32(2.0**-40)  # keeps Σ|g·x·(1 + σ)| finite: the sums are compared too
    m = N // len(SCALAR_PAIRS)
    worst = [0.0, 0.0]
    report = []
    for k, (a, b) in enumerate(SCALAR_PAIRS):
        xs, gs = x[k * m:(k + 1) * m], g[k * m:(k + 1) * m]
        a32, b32 = np.float32(a), np.float32(b)
        got = _run(fn, xs, np.array(a32), np.array(b32), gs)
        want = reference(xs, np.full(m, a32), np.full(m, b32), gs)
        report.append(_check(path, got, want, f" a={a} b={b}", which=(0, 1)))  # per element
        for j in (2, 3):  # Σ over the elements: within the summation-error bound
            terms = want[j]
            err = abs(float(got[j]) - terms.sum())
            scale = np.abs(terms).sum()
            assert err <= SUM_REL * scale + 2.0**-24 * abs(terms.sum()) + SUB, \
                f"{path} a={a} b={b} {OUTPUTS[j]}: {err:.3g} vs Σ|term| {scale:.3g}"
            worst[j - 2] = max(worst[j - 2], err / scale if scale else 0.0)
    print(path, report, f"Σ errors / Σ|term|: grad a {worst[0]:.2g}, grad b {worst[1]:.2g}")
