// APALU on the CPU, float32: one pass over memory per direction, vectorised with ATen's
// at::vec (the ISA is chosen at build time by apalu/_ext.py), threads from at::parallel_for.
//
//   f(x) = a·(x + x·σ(kx))  for x >= 0,    b·(eˣ − 1)  for x < 0,    k = 1.702
//
// The positive branch is scaled before it is summed, (a·x)·(1 + σ) (and (g·x)·(1 + σ) for the
// gradient of a), so it overflows only where the true value does.
//
// One exponential per element: t = min(x, −kx) is −kx on x >= 0 and x on x < 0 (always <= 0, so
// eᵗ never overflows); σ(kx) = 1/(1 + eᵗ) on x >= 0, and eˣ − 1 on x < 0 comes from the same
// range reduction with full relative accuracy near 0⁻ (see exp_parts).
//
// Backward reads (g, x) once and writes grad x; the parameter gradients are reduced in the same
// pass: float vector partial sums over blocks of BLOCK elements, then doubles per thread.
//
// Layout: x is contiguous; a and b hold P values (P = 1, or one per channel). Element i belongs
// to channel (i / inner) % P, so a run of `inner` elements shares one (a, b). inner == 1 with
// P > 1 is the (N, C) case, where parameters vary along the row and are loaded as vectors.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t W = Vec::size();
constexpr float K = 1.702f;
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

inline Vec forward_vec(const Vec& x, const Vec& a, const Vec& b) {
  Vec t = at::vec::clamp_max(x, x * Vec(-K));  // NaN in x: NaN in both operands
  ExpParts ex = exp_parts(t);
  Vec r = (ex.e + Vec(1.0f)).reciprocal();  // σ(kx) on x >= 0
  // a·x first: x + x·σ overflows for x > 1.7e38 although a·(x + x·σ) fits for a < 0.5
  Vec ax = a * x;
  Vec yp = at::vec::fmadd(ax, r, ax);
  Vec yn = b * ex.em1;
  return Vec::blendv(yn, yp, x >= Vec(0.0f));  // NaN fails x >= 0: the NaN of yn
}

struct Grads {
  Vec gx, ga, gb;  // gradient for x; the terms of Σ for a and b
};

inline Grads backward_vec(const Vec& g, const Vec& x, const Vec& a, const Vec& b) {
  Vec one(1.0f), zero(0.0f);
  Vec t = at::vec::clamp_max(x, x * Vec(-K));
  ExpParts ex = exp_parts(t);
  const Vec& e = ex.e;
  Vec r = (e + one).reciprocal();
  Vec pos = x >= zero;
  // d/dx [x + x·σ(kx)] = 1 + σ + kx·σ·(1 − σ), with 1 − σ = e·σ (no cancellation); x is capped
  // so that kx·e·σ² is 0, not inf·0, at x = +inf.
  Vec kx = at::vec::clamp_max(x, Vec(1e4f)) * Vec(K);
  Vec dpos = a * (one + r + kx * e * r * r);
  Grads out;
  out.gx = g * Vec::blendv(b * e, dpos, pos);
  Vec gxv = g * x;  // g·x first, as in forward_vec: no overflow unless the term itself does
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

void check(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b, int64_t inner) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "apalu_cpu: x must be a contiguous float32 CPU tensor");
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.is_contiguous() &&
                  b.is_contiguous() && a.numel() == b.numel() && a.numel() >= 1,
              "apalu_cpu: a and b must be contiguous float32 tensors of one size");
  TORCH_CHECK(inner >= 1, "apalu_cpu: inner must be >= 1");
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

}  // namespace

at::Tensor apalu_forward(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
                         int64_t inner) {
  check(x, a, b, inner);
  auto y = at::empty_like(x);
  advise_huge_pages(y);
  const float* xp = x.const_data_ptr<float>();
  const float* ap = a.const_data_ptr<float>();
  const float* bp = b.const_data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t n = x.numel(), P = a.numel();
  if (P > 1 && inner == 1) {  // (N, C): parameters vary along each row of P values
    const int64_t rows = n / P;
    at::parallel_for(0, rows, std::max<int64_t>(1, GRAIN / P), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        for (int64_t c = 0; c < P; c += W) {
          int64_t m = std::min(W, P - c);
          Vec av = Vec::loadu(ap + c, m), bv = Vec::loadu(bp + c, m);
          forward_vec(Vec::loadu(xp + row * P + c, m), av, bv).store(yp + row * P + c, m);
        }
      }
    });
    return y;
  }
  at::parallel_for(0, n, GRAIN, [&](int64_t lo, int64_t hi) {
    for_runs(lo, hi, inner, P, ap, bp, [&](int64_t i0, int64_t i1, float ac, float bc, int64_t) {
      Vec av(ac), bv(bc);
      int64_t i = i0;
      for (; i + W <= i1; i += W) forward_vec(Vec::loadu(xp + i), av, bv).store(yp + i);
      if (i < i1) forward_vec(Vec::loadu(xp + i, i1 - i), av, bv).store(yp + i, i1 - i);
    });
  });
  return y;
}

// Returns (grad x or an empty tensor, grad a, grad b); grad a and b have a's shape.
std::vector<at::Tensor> apalu_backward(const at::Tensor& grad, const at::Tensor& x,
                                       const at::Tensor& a, const at::Tensor& b, int64_t inner,
                                       bool need_x) {
  check(x, a, b, inner);
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == at::kFloat && grad.is_contiguous(),
              "apalu_cpu: grad must be a contiguous float32 tensor of x's shape");
  const float* gp = grad.const_data_ptr<float>();
  const float* xp = x.const_data_ptr<float>();
  const float* ap = a.const_data_ptr<float>();
  const float* bp = b.const_data_ptr<float>();
  at::Tensor gx = need_x ? at::empty_like(x) : at::empty({0}, x.options());
  if (need_x) advise_huge_pages(gx);
  float* gxp = need_x ? gx.data_ptr<float>() : nullptr;
  const int64_t n = x.numel(), P = a.numel();
  const int64_t T = at::get_num_threads();
  std::vector<double> acc_a(T * P, 0.0), acc_b(T * P, 0.0);

  auto step = [&](int64_t i, int64_t m, const Vec& av, const Vec& bv, Vec& sa, Vec& sb) {
    Vec g = m == W ? Vec::loadu(gp + i) : Vec::loadu(gp + i, m);
    Vec xv = m == W ? Vec::loadu(xp + i) : Vec::loadu(xp + i, m);
    Grads d = backward_vec(g, xv, av, bv);  // zero-filled tail lanes give g = 0: terms 0
    if (gxp) {
      if (m == W) d.gx.store(gxp + i); else d.gx.store(gxp + i, m);
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
          step(row * P + c, m, Vec::loadu(ap + c, m), Vec::loadu(bp + c, m), sa, sb);
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
  auto ga = at::zeros_like(a), gb = at::zeros_like(b);
  float* gap = ga.data_ptr<float>();
  float* gbp = gb.data_ptr<float>();
  for (int64_t c = 0; c < P; ++c) {
    double sa = 0.0, sb = 0.0;
    for (int64_t t = 0; t < T; ++t) {
      sa += acc_a[t * P + c];
      sb += acc_b[t * P + c];
    }
    gap[c] = static_cast<float>(sa);
    gbp[c] = static_cast<float>(sb);
  }
  return {gx, ga, gb};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_huge_pages", [](bool on) { g_huge_pages = on; },
        "advise transparent huge pages for large outputs (default on)");
  m.def("forward", &apalu_forward, "APALU forward (CPU, float32)");
  m.def("backward", &apalu_backward, "APALU backward (CPU, float32): grad x, grad a, grad b");
}
