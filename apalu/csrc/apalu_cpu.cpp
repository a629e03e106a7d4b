// APALU on the CPU, float32: one pass over memory per direction, vectorised with ATen's
// at::vec (the ISA is chosen at build time by apalu/_ext.py), threads from at::parallel_for.
//
//   f(x) = a·(x + x·σ(kx))  for x >= 0,    b·(eˣ − 1)  for x < 0
//
// k is an argument of every entry point: its one definition is apalu.functional.K.
//
// The positive branch is scaled before it is summed, (a·x)·(1 + σ) (and (g·x)·(1 + σ) for the
// gradient of a), so it overflows only where the true value does.
//
// One exponential per element: t = min(x, −kx) is −kx on x >= 0 and x on x < 0 (always <= 0, so
// eᵗ never overflows); σ(kx) = 1/(1 + eᵗ) on x >= 0, and eˣ − 1 on x < 0 comes from the same
// range reduction with full relative accuracy near 0⁻ (see exp_parts).
//
// Backward reads (g, x) once and writes grad x; the parameter gradients are reduced in the same
// pass (only when they are needed): float vector partial sums over blocks of BLOCK elements,
// then doubles per thread.
//
// Layout: x is made contiguous; a and b hold P values (P = 1, or one per channel). Element i
// belongs to channel (i / inner) % P, so a run of `inner` elements shares one (a, b). inner == 1
// with P > 1 is the (N, C) case, where parameters vary along the row and are loaded as vectors.
// inner < 1 asks for torch.nn.functional.prelu's rule: channels are dim 1 (dim 0 of a 1-D x).
//
// The operator apalu::apalu (TORCH_LIBRARY below) is the whole layer in one call: it takes the
// module's raw parameters and, with softplus = true, applies a = softplus(ρ) + floor itself, and
// its autograd kernel is C++ too (saves x, a, b; recomputes the rest), so neither direction
// passes through Python. Under torch.inference_mode() the CPU kernel runs directly, and under
// torch.no_grad() (or when no input requires grad) the autograd kernel calls it without a node
// (no autograd bookkeeping, nothing saved). Python reaches the operator through the
// extension's apalu_raw (the eager entry, at the end of this file).

#include <torch/extension.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t W = Vec::size();
// beyond this x, kx·σ(−kx) is exactly 0 in float32 (apalu.functional.SATURATE, same value)
constexpr float SATURATE = 1e4f;
constexpr int64_t BLOCK = 16384;  // elements per float partial sum (then added in double)
constexpr int64_t GRAIN = 32768;  // elements per parallel task at least

// eᵗ and eᵗ − 1 for t <= 0 from one range reduction, inline (a call into a vector libm spills
// every live register and cost more here than the arithmetic): t = n·ln2 + r, |r| <= ln2/2,
// q = eʳ − 1 = r + r²·P(r) (Cephes' expf polynomial, ~1 ulp). eᵗ = 2ⁿ·(1 + q), with 2ⁿ⁺⁶⁰ built
// in the exponent bits and the final 2⁻⁶⁰ giving subnormal results their one rounding.
// eᵗ − 1 is q itself for n = 0 (|t| < ln2/2: full relative accuracy near 0⁻), eᵗ − 1 otherwise
// (there eᵗ <= 0.71, no cancellation).
struct ExpParts {
  Vec e, em1;
};

inline ExpParts exp_parts(const Vec& t) {
  using VecI = at::vec::Vectorized<int32_t>;
  // below -104, eᵗ < 2⁻¹⁵⁰ rounds to 0, and so does the value computed at -104. (clamp_min and
  // clamp_max propagate NaN; the IEEE maximum/minimum with their extra blends ran 2.5x slower.)
  Vec tc = at::vec::clamp_min(t, Vec(-104.0f));
  Vec n = (tc * Vec(1.44269504088896341f)).round();
  Vec r = at::vec::fmadd(n, Vec(-0.693359375f), tc);  // Cody–Waite: ln2 in two parts
  r = at::vec::fmadd(n, Vec(2.12194440e-4f), r);
  Vec p(1.9875691500e-4f);
  p = at::vec::fmadd(p, r, Vec(1.3981999507e-3f));
  p = at::vec::fmadd(p, r, Vec(8.3334519073e-3f));
  p = at::vec::fmadd(p, r, Vec(4.1665795894e-2f));
  p = at::vec::fmadd(p, r, Vec(1.6666665459e-1f));
  p = at::vec::fmadd(p, r, Vec(5.0000001201e-1f));
  Vec q = at::vec::fmadd(p * r, r, r);
  VecI ni = at::vec::convert_to_int_of_same_size(n);
  Vec s = at::vec::cast<float>((ni + VecI(127 + 60)) << VecI(23));  // 2ⁿ⁺⁶⁰, n >= -150
  ExpParts out;
  out.e = at::vec::fmadd(s, q, s) * Vec(8.673617379884035e-19f);  // · 2⁻⁶⁰
  out.em1 = Vec::blendv(out.e - Vec(1.0f), q, n == Vec(0.0f));
  return out;
}

// The forward needs eᵗ only where it is not negligible against 1 (σ = 1/(1 + eᵗ) on x >= 0,
// eᵗ − 1 on x < 0), so t is clamped at −87 (eᵗ < 2⁻¹²⁵ there: 1 + eᵗ and eᵗ − 1 are exactly 1
// and −1, as for any smaller eᵗ) and 2ⁿ is built directly, without exp_parts' subnormal
// scaling. On x < 0, eᵗ − 1 = (2ⁿ − 1) + 2ⁿ·q in one fma: 2ⁿ − 1 is exact for n >= −24, so this
// is q itself at n = 0 (full relative accuracy near 0⁻) and one rounding elsewhere.
//
// U vectors at a time, each step written for all U before the next: the chain of one vector
// (about 70 cycles of latency: the polynomial, the division) is longer than what the
// out-of-order core keeps in flight, so interleaving independent vectors in program order
// runs about 1.35x faster (U = 4; measured on Zen 3, AVX2). a[u], b[u] belong to x[u].
template <int U>
C10_ALWAYS_INLINE void forward_block(const float* xp, float* yp, const Vec* a, const Vec* b,
                                     const Vec& nk) {
  using VecI = at::vec::Vectorized<int32_t>;
  Vec x[U], tc[U], n[U], r[U], p[U], s[U], pos[U], v[U];
#define APALU_EACH for (int u = 0; u < U; ++u)
  APALU_EACH x[u] = Vec::loadu(xp + u * W);
  // t = min(x, −kx), clamped; NaN in x: NaN in both operands, and the clamps propagate it
  APALU_EACH tc[u] = at::vec::clamp_min(at::vec::clamp_max(x[u], x[u] * nk), Vec(-87.0f));
  APALU_EACH n[u] = (tc[u] * Vec(1.44269504088896341f)).round();
  APALU_EACH r[u] = at::vec::fmadd(n[u], Vec(-0.693359375f), tc[u]);
  APALU_EACH r[u] = at::vec::fmadd(n[u], Vec(2.12194440e-4f), r[u]);
  APALU_EACH p[u] = at::vec::fmadd(Vec(1.9875691500e-4f), r[u], Vec(1.3981999507e-3f));
  APALU_EACH p[u] = at::vec::fmadd(p[u], r[u], Vec(8.3334519073e-3f));
  APALU_EACH p[u] = at::vec::fmadd(p[u], r[u], Vec(4.1665795894e-2f));
  APALU_EACH p[u] = at::vec::fmadd(p[u], r[u], Vec(1.6666665459e-1f));
  APALU_EACH p[u] = at::vec::fmadd(p[u], r[u], Vec(5.0000001201e-1f));
  APALU_EACH p[u] = at::vec::fmadd(p[u] * r[u], r[u], r[u]);  // q = eʳ − 1
  APALU_EACH s[u] = at::vec::cast<float>(
      (at::vec::convert_to_int_of_same_size(n[u]) + VecI(127)) << VecI(23));  // 2ⁿ
  APALU_EACH pos[u] = x[u] >= Vec(0.0f);  // NaN fails it: the NaN of the negative branch
  // eᵗ on x >= 0, eᵗ − 1 on x < 0
  APALU_EACH v[u] = at::vec::fmadd(s[u], p[u], Vec::blendv(s[u] - Vec(1.0f), s[u], pos[u]));
  APALU_EACH {
    // a·x first: x + x·σ overflows for x > 1.7e38 although a·(x + x·σ) fits for a < 0.5
    Vec ax = a[u] * x[u];
    Vec yp_u = at::vec::fmadd(ax, (v[u] + Vec(1.0f)).reciprocal(), ax);
    Vec::blendv(b[u] * v[u], yp_u, pos[u]).store(yp + u * W);
  }
#undef APALU_EACH
}

// One vector of m <= W elements (a tail).
inline void forward_tail(const float* xp, float* yp, int64_t m, const Vec& a, const Vec& b,
                         const Vec& nk) {
  float xb[W] = {}, yb[W];
  std::copy(xp, xp + m, xb);
  forward_block<1>(xb, yb, &a, &b, nk);
  std::copy(yb, yb + m, yp);
}

struct Grads {
  Vec gx, ga, gb;  // gradient for x; the terms of Σ for a and b
};

inline Grads backward_vec(const Vec& g, const Vec& x, const Vec& a, const Vec& b, const Vec& k) {
  Vec one(1.0f), zero(0.0f);
  Vec t = at::vec::clamp_max(x, x * (zero - k));
  ExpParts ex = exp_parts(t);
  const Vec& e = ex.e;
  Vec r = (e + one).reciprocal();
  Vec pos = x >= zero;
  // d/dx [x + x·σ(kx)] = 1 + σ + kx·σ·(1 − σ), with 1 − σ = e·σ (no cancellation); x is capped
  // so that kx·e·σ² is 0, not inf·0, at x = +inf.
  Vec kx = at::vec::clamp_max(x, Vec(SATURATE)) * k;
  Vec dpos = a * (one + r + kx * e * r * r);
  Grads out;
  out.gx = g * Vec::blendv(b * e, dpos, pos);
  Vec gxv = g * x;  // g·x first, as in forward_block: no overflow unless the term itself does
  out.ga = Vec::blendv(zero, at::vec::fmadd(gxv, r, gxv), pos);
  out.gb = Vec::blendv(g * ex.em1, zero, pos);
  return out;
}

inline double hsum(const Vec& v) {
  return static_cast<double>(at::vec::vec_reduce_all<float>([](Vec& p, Vec& q) { return p + q; }, v));
}

// A fresh large tensor costs one page fault per 4 KiB page on first touch, more than the
// arithmetic done in it. Where the kernel allows it (transparent huge pages in "madvise" mode),
// ask for 2 MiB pages on the 2 MiB-aligned part of a large output before writing it. Advice
// only: nothing changes if it is refused.
bool g_huge_pages = true;  // set_huge_pages(false) turns the advice off (for the bench)

inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (!g_huge_pages) return;
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t n = static_cast<uintptr_t>(t.nbytes());
  if (n < 4 * kHuge) return;
  const uintptr_t p = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (p + kHuge - 1) & ~(kHuge - 1), hi = (p + n) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
}

// Vec::loadu(p, m) and store(p, m) go through a stack buffer (a memcpy each): only for a tail.
inline Vec load(const float* p, int64_t m) { return m == W ? Vec::loadu(p) : Vec::loadu(p, m); }
inline void store(const Vec& v, float* p, int64_t m) {
  if (m == W) v.store(p); else v.store(p, m);
}

// Calls fn(begin, end, a_c, b_c, c) over maximal runs of [lo, hi) that share one channel.
template <typename F>
inline void for_runs(int64_t lo, int64_t hi, int64_t inner, int64_t P, const float* a,
                     const float* b, const F& fn) {
  if (P == 1) {
    fn(lo, hi, a[0], b[0], int64_t(0));
    return;
  }
  while (lo < hi) {
    int64_t run = lo / inner;
    int64_t end = std::min(hi, (run + 1) * inner);
    int64_t c = run % P;
    fn(lo, end, a[c], b[c], c);
    lo = end;
  }
}

// ---- the passes over memory, on effective (positive) parameters ----------------------------

void forward_pass(const float* xp, float* yp, int64_t n, const float* ap, const float* bp,
                  int64_t P, int64_t inner, float k) {
  const Vec nk(-k);
  if (P > 1 && inner == 1) {  // (N, C): parameters vary along each row of P values
    const int64_t rows = n / P;
    at::parallel_for(0, rows, std::max<int64_t>(1, GRAIN / P), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const float* xr = xp + row * P;
        float* yr = yp + row * P;
        int64_t c = 0;
        for (; c + 4 * W <= P; c += 4 * W) {
          const Vec av[4] = {Vec::loadu(ap + c), Vec::loadu(ap + c + W),
                             Vec::loadu(ap + c + 2 * W), Vec::loadu(ap + c + 3 * W)};
          const Vec bv[4] = {Vec::loadu(bp + c), Vec::loadu(bp + c + W),
                             Vec::loadu(bp + c + 2 * W), Vec::loadu(bp + c + 3 * W)};
          forward_block<4>(xr + c, yr + c, av, bv, nk);
        }
        for (; c + W <= P; c += W) {
          const Vec av = Vec::loadu(ap + c), bv = Vec::loadu(bp + c);
          forward_block<1>(xr + c, yr + c, &av, &bv, nk);
        }
        if (c < P)
          forward_tail(xr + c, yr + c, P - c, Vec::loadu(ap + c, P - c),
                       Vec::loadu(bp + c, P - c), nk);
      }
    });
    return;
  }
  at::parallel_for(0, n, GRAIN, [&](int64_t lo, int64_t hi) {
    for_runs(lo, hi, inner, P, ap, bp, [&](int64_t i0, int64_t i1, float ac, float bc, int64_t) {
      const Vec av[4] = {Vec(ac), Vec(ac), Vec(ac), Vec(ac)};
      const Vec bv[4] = {Vec(bc), Vec(bc), Vec(bc), Vec(bc)};
      int64_t i = i0;
      for (; i + 4 * W <= i1; i += 4 * W) forward_block<4>(xp + i, yp + i, av, bv, nk);
      for (; i + W <= i1; i += W) forward_block<1>(xp + i, yp + i, av, bv, nk);
      if (i < i1) forward_tail(xp + i, yp + i, i1 - i, av[0], bv[0], nk);
    });
  });
}

// Writes grad x into gxp (when not null) and, when sum_a is not null, Σ over each channel of
// the terms for a and b into sum_a[c], sum_b[c] (doubles).
void backward_pass(const float* gp, const float* xp, float* gxp, int64_t n, const float* ap,
                   const float* bp, int64_t P, int64_t inner, float k, double* sum_a,
                   double* sum_b) {
  const Vec kv(k);
  if (sum_a == nullptr) {  // grad x only: no reductions
    if (P > 1 && inner == 1) {
      const int64_t rows = n / P;
      at::parallel_for(0, rows, std::max<int64_t>(1, GRAIN / P), [&](int64_t r0, int64_t r1) {
        for (int64_t row = r0; row < r1; ++row) {
          for (int64_t c = 0; c < P; c += W) {
            const int64_t m = std::min(W, P - c), i = row * P + c;
            store(backward_vec(load(gp + i, m), load(xp + i, m), load(ap + c, m), load(bp + c, m),
                               kv).gx,
                  gxp + i, m);
          }
        }
      });
      return;
    }
    at::parallel_for(0, n, GRAIN, [&](int64_t lo, int64_t hi) {
      for_runs(lo, hi, inner, P, ap, bp, [&](int64_t i0, int64_t i1, float ac, float bc, int64_t) {
        Vec av(ac), bv(bc);
        int64_t i = i0;
        for (; i + W <= i1; i += W)
          backward_vec(Vec::loadu(gp + i), Vec::loadu(xp + i), av, bv, kv).gx.store(gxp + i);
        if (i < i1)
          backward_vec(Vec::loadu(gp + i, i1 - i), Vec::loadu(xp + i, i1 - i), av, bv, kv)
              .gx.store(gxp + i, i1 - i);
      });
    });
    return;
  }
  const int64_t T = at::get_num_threads();
  std::vector<double> acc_a(T * P, 0.0), acc_b(T * P, 0.0);

  auto step = [&](int64_t i, int64_t m, const Vec& av, const Vec& bv, Vec& sa, Vec& sb) {
    Vec g = load(gp + i, m);
    Vec xv = load(xp + i, m);
    Grads d = backward_vec(g, xv, av, bv, kv);  // zero-filled tail lanes give g = 0: terms 0
    if (gxp) {
      store(d.gx, gxp + i, m);
    }
    sa = sa + d.ga;
    sb = sb + d.gb;
  };

  if (P > 1 && inner == 1) {
    const int64_t rows = n / P;
    at::parallel_for(0, rows, std::max<int64_t>(1, GRAIN / P), [&](int64_t r0, int64_t r1) {
      double* ta = acc_a.data() + at::get_thread_num() * P;
      double* tb = acc_b.data() + at::get_thread_num() * P;
      float la[W], lb[W];
      for (int64_t row = r0; row < r1; ++row) {
        for (int64_t c = 0; c < P; c += W) {
          int64_t m = std::min(W, P - c);
          Vec sa(0.0f), sb(0.0f);
          step(row * P + c, m, load(ap + c, m), load(bp + c, m), sa, sb);
          sa.store(la);
          sb.store(lb);
          for (int64_t j = 0; j < m; ++j) {
            ta[c + j] += la[j];
            tb[c + j] += lb[j];
          }
        }
      }
    });
  } else {
    at::parallel_for(0, n, GRAIN, [&](int64_t lo, int64_t hi) {
      double* ta = acc_a.data() + at::get_thread_num() * P;
      double* tb = acc_b.data() + at::get_thread_num() * P;
      for_runs(lo, hi, inner, P, ap, bp, [&](int64_t i0, int64_t i1, float ac, float bc, int64_t c) {
        Vec av(ac), bv(bc);
        for (int64_t blk = i0; blk < i1; blk += BLOCK) {
          int64_t end = std::min(i1, blk + BLOCK);
          Vec sa(0.0f), sb(0.0f);
          int64_t i = blk;
          for (; i + W <= end; i += W) step(i, W, av, bv, sa, sb);
          if (i < end) step(i, end - i, av, bv, sa, sb);
          ta[c] += hsum(sa);
          tb[c] += hsum(sb);
        }
      });
    });
  }
  for (int64_t c = 0; c < P; ++c) {
    double sa = 0.0, sb = 0.0;
    for (int64_t t = 0; t < T; ++t) {
      sa += acc_a[t * P + c];
      sb += acc_b[t * P + c];
    }
    sum_a[c] = sa;
    sum_b[c] = sb;
  }
}

// ---- parameters: raw -> effective, layout ------------------------------------------------

// torch.nn.functional.softplus (beta 1, threshold 20) in float32, then + floor in float32: the
// module's a = softplus(ρ) + floor as its ATen ops compute it (up to the last-bit rounding of
// log1p(exp) in double), for P values at once: at::vec's double exp and log1p, four lanes a
// call (64 scalar libm calls were 2 µs of a 2k-element per-channel layer).
void softplus_floor_n(const float* r, float* out, int64_t P, float floor) {
  using VecD = at::vec::Vectorized<double>;
  constexpr int64_t WD = VecD::size();
  double buf[WD];
  for (int64_t c = 0; c < P; c += WD) {
    const int64_t m = std::min(WD, P - c);
    for (int64_t j = 0; j < WD; ++j) buf[j] = j < m ? static_cast<double>(r[c + j]) : 0.0;
    VecD::loadu(buf).exp().log1p().store(buf);
    for (int64_t j = 0; j < m; ++j) {
      const float rj = r[c + j];
      out[c + j] = (rj > 20.0f ? rj : static_cast<float>(buf[j])) + floor;
    }
  }
}

// d softplus / dρ as ATen's softplus_backward: 1 past the threshold, z / (z + 1) with z = e^ρ.
inline float softplus_slope(float r) {
  if (r > 20.0f) return 1.0f;
  float z = std::exp(r);
  return z / (z + 1.0f);
}

// Effective a and b (P values each) in `store` when softplus is applied, else the inputs' data.
struct Effective {
  c10::SmallVector<float, 64> store;  // no heap allocation up to 32 channels
  const float* a;
  const float* b;
};

Effective effective(const at::Tensor& a, const at::Tensor& b, bool softplus, double floor) {
  Effective e;
  const int64_t P = a.numel();
  if (!softplus) {
    e.a = a.const_data_ptr<float>();
    e.b = b.const_data_ptr<float>();
    return e;
  }
  e.store.resize(2 * P);
  const float* ar = a.const_data_ptr<float>();
  const float* br = b.const_data_ptr<float>();
  const float f = static_cast<float>(floor);
  softplus_floor_n(ar, e.store.data(), P, f);
  softplus_floor_n(br, e.store.data() + P, P, f);
  e.a = e.store.data();
  e.b = e.store.data() + P;
  return e;
}

void check_params(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == at::kFloat &&
                  b.scalar_type() == at::kFloat && a.is_contiguous() && b.is_contiguous() &&
                  a.numel() == b.numel() && a.numel() >= 1,
              "apalu_cpu: a and b must be contiguous float32 CPU tensors of one size");
}

// The run length of one channel: `inner` when given (>= 1), else prelu's rule.
int64_t resolve_inner(const at::Tensor& x, int64_t P, int64_t inner) {
  if (inner >= 1) return inner;
  if (P == 1) return 1;
  const int64_t cd = x.dim() >= 2 ? 1 : 0;
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.size(cd) == P, "per-channel APALU parameter has ", P,
                    " values but the input has shape ", x.sizes(), " (channels are dim ", cd, ")");
  int64_t run = 1;
  for (int64_t d = cd + 1; d < x.dim(); ++d) run *= x.size(d);
  return run;
}

// ---- entry points --------------------------------------------------------------------------

at::Tensor apalu_forward(const at::Tensor& x_in, const at::Tensor& a, const at::Tensor& b,
                         double k, int64_t inner, bool softplus, double floor) {
  TORCH_CHECK(x_in.device().is_cpu() && x_in.scalar_type() == at::kFloat,
              "apalu_cpu: x must be a float32 CPU tensor");
  check_params(a, b);
  const at::Tensor x = x_in.contiguous();
  const int64_t P = a.numel();
  inner = resolve_inner(x, P, inner);
  Effective e = effective(a, b, softplus, floor);
  auto y = at::empty_like(x);
  advise_huge_pages(y);
  forward_pass(x.const_data_ptr<float>(), y.data_ptr<float>(), x.numel(), e.a, e.b, P, inner,
               static_cast<float>(k));
  return y;
}

// (grad x or an empty tensor, grad a, grad b or empty tensors); the parameter gradients have
// the shapes of a and b and are for the given (raw, with softplus) parameters.
std::tuple<at::Tensor, at::Tensor, at::Tensor> apalu_backward(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& a, const at::Tensor& b,
    double k, int64_t inner, bool softplus, double floor, bool need_x, bool need_ab) {
  TORCH_CHECK(x_in.device().is_cpu() && x_in.scalar_type() == at::kFloat &&
                  grad_in.scalar_type() == at::kFloat && grad_in.sizes() == x_in.sizes(),
              "apalu_cpu: x and grad must be float32 CPU tensors of one shape");
  check_params(a, b);
  const at::Tensor x = x_in.contiguous(), grad = grad_in.contiguous();
  const int64_t P = a.numel();
  inner = resolve_inner(x, P, inner);
  Effective e = effective(a, b, softplus, floor);
  at::Tensor gx = need_x ? at::empty_like(x) : at::empty({0}, x.options());
  if (need_x) advise_huge_pages(gx);
  at::Tensor ga = need_ab ? at::empty_like(a) : at::empty({0}, a.options());
  at::Tensor gb = need_ab ? at::empty_like(b) : at::empty({0}, b.options());
  std::vector<double> sums(need_ab ? 2 * P : 0);
  backward_pass(grad.const_data_ptr<float>(), x.const_data_ptr<float>(),
                need_x ? gx.data_ptr<float>() : nullptr, x.numel(), e.a, e.b, P, inner,
                static_cast<float>(k), need_ab ? sums.data() : nullptr,
                need_ab ? sums.data() + P : nullptr);
  if (need_ab) {
    float* gap = ga.data_ptr<float>();
    float* gbp = gb.data_ptr<float>();
    const float* ar = a.const_data_ptr<float>();
    const float* br = b.const_data_ptr<float>();
    for (int64_t c = 0; c < P; ++c) {
      gap[c] = static_cast<float>(sums[c]);
      gbp[c] = static_cast<float>(sums[P + c]);
      if (softplus) {  // chain rule through a = softplus(ρ) + floor, as ATen's backward does
        gap[c] *= softplus_slope(ar[c]);
        gbp[c] *= softplus_slope(br[c]);
      }
    }
  }
  return {gx, ga, gb};
}

// The gradients in differentiable ATen ops, for a backward that is itself recorded
// (create_graph=True: double backward, gradient penalties). Same formulas as
// apalu.functional's reference backward; rare, so plain ATen.
std::tuple<at::Tensor, at::Tensor, at::Tensor> differentiable_backward(
    const at::Tensor& g, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b, double k,
    int64_t inner, bool softplus, double floor) {
  const int64_t P = a.numel();
  inner = resolve_inner(x, P, inner);
  std::vector<int64_t> shape(x.dim(), 1);  // a, b viewed to broadcast against x
  if (P > 1) {
    int64_t run = 1, d = x.dim() - 1;
    while (d > 0 && run < inner) run *= x.size(d--);
    TORCH_CHECK(run == inner && x.size(d) == P, "apalu: channel layout not understood");
    shape[d] = P;
  }
  auto to_effective = [&](const at::Tensor& r) { return softplus ? at::softplus(r) + floor : r; };
  at::Tensor ae = to_effective(a).reshape(shape), be = to_effective(b).reshape(shape);
  at::Tensor pos = x >= 0, xp = x.clamp_min(0), xn = x.clamp_max(0);
  at::Tensor xc = xp.clamp_max(SATURATE), s = at::sigmoid(xc * k);
  at::Tensor gx = g * at::where(pos, ae * (1 + s + k * xc * s * at::sigmoid(xc * -k)),
                                be * at::exp(xn));
  at::Tensor ga = at::where(pos, (g * xp) * (1 + s), at::zeros_like(g)).sum_to_size(ae.sizes());
  at::Tensor gb = at::where(pos, at::zeros_like(g), g * at::expm1(xn)).sum_to_size(be.sizes());
  ga = ga.reshape(a.sizes());
  gb = gb.reshape(b.sizes());
  if (softplus) {  // softplus' slope with ATen's threshold: 1 past 20
    ga = ga * at::where(a > 20, at::ones_like(a), at::sigmoid(a));
    gb = gb * at::where(b > 20, at::ones_like(b), at::sigmoid(b));
  }
  return {gx, ga, gb};
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class APALUFunction : public torch::autograd::Function<APALUFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& a,
                            const at::Tensor& b, double k, int64_t inner, bool softplus,
                            double floor) {
    ctx->save_for_backward({x, a, b});
    ctx->saved_data["k"] = k;
    ctx->saved_data["inner"] = inner;
    ctx->saved_data["softplus"] = softplus;
    ctx->saved_data["floor"] = floor;
    return apalu_forward(x, a, b, k, inner, softplus, floor);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &a = saved[1], &b = saved[2];
    const double k = ctx->saved_data["k"].toDouble(), floor = ctx->saved_data["floor"].toDouble();
    const int64_t inner = ctx->saved_data["inner"].toInt();
    const bool softplus = ctx->saved_data["softplus"].toBool();
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_ab = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);
    at::Tensor gx, ga, gb;
    if (at::GradMode::is_enabled()) {  // create_graph: the backward is itself differentiated
      std::tie(gx, ga, gb) = differentiable_backward(grads[0], x, a, b, k, inner, softplus, floor);
    } else {
      std::tie(gx, ga, gb) =
          apalu_backward(grads[0], x, a, b, k, inner, softplus, floor, need_x, need_ab);
    }
    at::Tensor none;
    return {need_x ? gx : none, ctx->needs_input_grad(1) ? ga : none,
            ctx->needs_input_grad(2) ? gb : none, none, none, none, none};
  }
};

at::Tensor apalu_autograd(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b, double k,
                          int64_t inner, bool softplus, double floor) {
  // Nothing to differentiate (torch.no_grad(), or no input requires grad): the forward alone,
  // without the autograd node, its saved tensors and its saved arguments.
  if (!at::GradMode::is_enabled() ||
      !(x.requires_grad() || a.requires_grad() || b.requires_grad())) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return apalu_forward(x, a, b, k, inner, softplus, floor);
  }
  return APALUFunction::apply(x, a, b, k, inner, softplus, floor);
}

at::Tensor apalu_meta(const at::Tensor& x, const at::Tensor&, const at::Tensor&, double, int64_t,
                      bool, double) {
  return at::empty_like(x, x.options().memory_format(at::MemoryFormat::Contiguous));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> apalu_backward_meta(
    const at::Tensor&, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b, double,
    int64_t, bool, double, bool need_x, bool need_ab) {
  auto empty = [](const at::Tensor& t, bool need) {
    return need ? at::empty_like(t, t.options().memory_format(at::MemoryFormat::Contiguous))
                : at::empty({0}, t.options());
  };
  return {empty(x, need_x), empty(a, need_ab), empty(b, need_ab)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(apalu, m) {
  m.def("apalu(Tensor x, Tensor a, Tensor b, float k, int inner, bool softplus, float floor) "
        "-> Tensor");
  m.def("apalu_backward(Tensor grad, Tensor x, Tensor a, Tensor b, float k, int inner, "
        "bool softplus, float floor, bool need_x, bool need_ab) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(apalu, CPU, m) {
  m.impl("apalu", &apalu_forward);
  m.impl("apalu_backward", &apalu_backward);
}

TORCH_LIBRARY_IMPL(apalu, Autograd, m) { m.impl("apalu", &apalu_autograd); }

TORCH_LIBRARY_IMPL(apalu, Meta, m) {
  m.impl("apalu", &apalu_meta);
  m.impl("apalu_backward", &apalu_backward_meta);
}

// ---- the eager entry from Python -------------------------------------------------------------
//
// apalu.functional.apalu_raw calls apalu_raw below instead of torch.ops.apalu.apalu: the same
// operator, called through a cached typed handle of the dispatcher (so autograd, inference
// mode, profiler and dispatch modes see apalu::apalu as before), without the Python
// OpOverloadPacket's argument parsing (about 4 µs of a 2k-element call). It answers None where
// the general path must decide (another device or dtype, a functorch transform, a TorchScript
// trace, a torch-function mode, APALU_CPU_KERNEL=0); Python checks torch.compile and
// torch.export itself.

bool kernel_switched_off() {
  const char* v = std::getenv("APALU_CPU_KERNEL");
  return v != nullptr && std::strcmp(v, "0") == 0;
}

bool plain_cpu_float(const at::Tensor& t) {
  // functorch wrappers, __torch_dispatch__ subclasses and functional tensors take the general
  // path (choose_backend), which knows what each of them needs
  constexpr c10::DispatchKeySet kWrapped({c10::DispatchKey::Python,
                                          c10::DispatchKey::FuncTorchGradWrapper,
                                          c10::DispatchKey::FuncTorchBatched,
                                          c10::DispatchKey::Functionalize});
  return t.defined() && t.layout() == at::kStrided && t.device().is_cpu() &&
         t.scalar_type() == at::kFloat && !t.key_set().has_any(kWrapped);
}

bool eager_entry_applies(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b) {
  if (!plain_cpu_float(x) || !plain_cpu_float(a) || !plain_cpu_float(b)) return false;
  if (a.dim() != 1 || b.dim() != 1 || a.numel() != b.numel() || a.numel() < 1 ||
      !a.is_contiguous() || !b.is_contiguous())
    return false;
  if (c10::impl::tls_local_dispatch_key_set().included_.has(
          c10::DispatchKey::FuncTorchDynamicLayerFrontMode))
    return false;  // inside a torch.func transform
  if (torch::jit::tracer::isTracing() || at::impl::torch_function_mode_enabled()) return false;
  return !kernel_switched_off();
}

constexpr int64_t kReleaseGil = int64_t(1) << 16;  // elements; below, the call is too short to share

pybind11::object eager_apalu_raw(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
                                 double k, bool softplus, double floor) {
  if (!eager_entry_applies(x, a, b)) return pybind11::none();
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("apalu::apalu", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
                            int64_t, bool, double)>();
  at::Tensor y;
  if (x.numel() >= kReleaseGil) {
    pybind11::gil_scoped_release no_gil;
    y = op.call(x, a, b, k, -1, softplus, floor);
  } else {
    y = op.call(x, a, b, k, -1, softplus, floor);
  }
  return pybind11::cast(std::move(y));
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_huge_pages", [](bool on) { g_huge_pages = on; },
        "advise transparent huge pages for large outputs (default on)");
  m.def("apalu_raw", &eager_apalu_raw,
        "apalu::apalu(x, a, b, k, -1, softplus, floor) on a module's raw 1-D float32 CPU "
        "parameters through the dispatcher, or None where the general path must decide");
}
