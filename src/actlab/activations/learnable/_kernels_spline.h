// The spline kernels' core, shared by _kernels_spline.cpp (spline_fwd / spline_bwd on a table,
// PiecewiseFn) and _kernels_spline_values.cpp (the linear and cubic splines from their knot values).
//
// spline (PiecewiseFn): table (C, S, m), m = 2 (linear: value, slope) or 4 (cubic in t).
// u = offset + x inv_h is x in segment units; segment i = trunc(clamp(u, 0, S - 1)),
// t = u - i; the cubic is evaluated at tc = clamp(t, 0, 1) and continued with its
// end tangent, the linear segments extrapolate by themselves. The excess beyond the
// range (t, or t - tc) is clamped to [lc, uc]: -1 or +1 on the side of a flat tail
// (slope exactly 0), else -inf or +inf, so that a flat tail at x = +-inf gives its
// value, not 0 * inf = NaN. Inside the range the excess is in [0, 1) (t) or 0.
//
// Backward scatters d f / d table[i, p] = tc^p + p tc^(p-1) (t - tc), times g, into
// per-item tables (float for at most kChunk elements, then double; double throughout for
// tables over 2 kChunk floats); element j adds to copy j % kCopies of the table, so that
// neighbours in one segment do not queue on one address.
#pragma once

#include "_kernels.h"

namespace actlab {
namespace {

constexpr int kCopies = 4;

ACTLAB_INLINE vf gather(const float* base, vi idx) {
#if defined(__AVX512F__)
  return (vf)_mm512_i32gather_ps((__m512i)idx, base, 4);
#elif defined(__AVX2__)
  return (vf)_mm256_i32gather_ps(base, (__m256i)idx, 4);
#else
  vf r;
  for (int j = 0; j < W; ++j) r[j] = base[idx[j]];
  return r;
#endif
}

// One element's M gradient terms, as floats and as doubles.
template <int M>
struct Terms;
template <>
struct Terms<2> {
  typedef float f __attribute__((vector_size(8)));
  typedef double d __attribute__((vector_size(16)));
};
template <>
struct Terms<4> {
  typedef float f __attribute__((vector_size(16)));
  typedef double d __attribute__((vector_size(32)));
};

template <int M>
struct Spline {
  const float* tab;  // this channel's (S, M) rows
  float inv_h, off, last, lc, uc;
  int64_t S;
  bool small;        // S <= kLutMax: coefficients in lookup tables
  bool flat;         // a tail of slope 0: the excess is clamped to [lc, uc]
  Lut lut[M];

  ACTLAB_INLINE vf coef(int p, vi seg) const { return small ? lut[p](seg) : gather(tab + p, seg * M); }

  ACTLAB_INLINE void locate(vf x, vi& seg, vf& t, vf& tc) const {
    vf u = x * inv_h + off;
    vf uc = vselect(u > splat(0.f), u, splat(0.f));  // NaN goes to segment 0 and stays NaN through t
    uc = vselect(uc < splat(last), uc, splat(last));
    seg = __builtin_convertvector(uc, vi);
    t = u - __builtin_convertvector(seg, vf);
    tc = M == 2 ? t : clamp(t, 0.f, 1.f);
  }

  ACTLAB_INLINE vf forward(vf x) const {
    vi seg;
    vf t, tc;
    locate(x, seg, t, tc);
    if (M == 2) return coef(0, seg) + coef(1, seg) * (flat ? clamp(t, lc, uc) : t);
    vf c0 = coef(0, seg), c1 = coef(1, seg), c2 = coef(2, seg), c3 = coef(3, seg);
    vf val = ((c3 * tc + c2) * tc + c1) * tc + c0;
    vf der = (c3 * 3.f * tc + c2 * 2.f) * tc + c1;
    return val + der * (flat ? clamp(t - tc, lc, uc) : t - tc);
  }

  // grad_input of a run of n <= kChunk elements. The table gradient terms go to
  // `terms` first, M consecutive floats per element, and are then added by a scalar loop
  // that adds all M terms of an element as one vector: into facc (kCopies float tables of
  // S * M, which the caller adds into its doubles at least every kChunk elements) where
  // given, else into acc (the same in doubles, converting every element's terms).
  ACTLAB_INLINE void backward(const float* x, const float* g, float* gx, int64_t n, double* acc,
                              float* facc) const {
    alignas(64) float terms[M * (kChunk + W)];
    alignas(64) int32_t rows[kChunk + W];
    const vi lanes = copy_offset();
    run<1>(x, g, gx, n, [&](const vf* xp, const vf* gp, vf* gxp, int64_t at) ACTLAB_BODY {
      const vf xv = xp[0], gv = gp[0];
      vi seg;
      vf t, tc, slope;
      locate(xv, seg, t, tc);
      float* out = terms + M * at;
      if (M == 2) {
        slope = coef(1, seg);
        vf gt = gv * t;
        store(out, zip_lo(gv, gt));
        store(out + W, zip_hi(gv, gt));
      } else {
        vf c1 = coef(1, seg), c2 = coef(2, seg), c3 = coef(3, seg);
        slope = (c3 * 3.f * tc + c2 * 2.f) * tc + c1;
        vf ex = t - tc, g2 = gv * tc, g3 = g2 * tc;
        vf t1 = gv * (tc + ex), t2 = g2 * (tc + 2.f * ex), t3 = g3 * (tc + 3.f * ex);
        vf l0 = zip_lo(gv, t2), h0 = zip_hi(gv, t2), l1 = zip_lo(t1, t3), h1 = zip_hi(t1, t3);
        store(out, zip_lo(l0, l1));
        store(out + W, zip_hi(l0, l1));
        store(out + 2 * W, zip_lo(h0, h1));
        store(out + 3 * W, zip_hi(h0, h1));
      }
      vi row = seg * M + lanes;
      std::memcpy(rows + at, &row, sizeof row);
      gxp[0] = gv * (slope * inv_h);
    });
    using vm = typename Terms<M>::f;
    using vdm = typename Terms<M>::d;
    if (facc) {
      for (int64_t i = 0; i < n; ++i) {
        vm tv, av;
        std::memcpy(&tv, terms + M * i, sizeof tv);
        std::memcpy(&av, facc + rows[i], sizeof av);
        av += tv;
        std::memcpy(facc + rows[i], &av, sizeof av);
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      vm tv;
      vdm av;
      std::memcpy(&tv, terms + M * i, sizeof tv);
      std::memcpy(&av, acc + rows[i], sizeof av);
      av += __builtin_convertvector(tv, vdm);
      std::memcpy(acc + rows[i], &av, sizeof av);
    }
  }

  ACTLAB_INLINE vi copy_offset() const {
    vi lane;
    for (int j = 0; j < W; ++j) lane[j] = static_cast<int32_t>((j % kCopies) * S * M);
    return lane;
  }
};

// The kernels' view of a table (C, S, m) and its grid, inv_h and offset (C,): pointers into
// the given tensors (kept alive here) or into own, where the table is built in C++ from the
// knot values (_kernels_spline_values.cpp) without making small tensors on every call.
struct SplineArgs {
  View v;
  int64_t S, m;
  const float *table, *inv_h, *offset;
  at::Tensor keep[3];
  std::vector<float> own;

  template <int M>
  void channel(int64_t c, Spline<M>& k) const {
    k.tab = table + c * S * M;
    k.inv_h = inv_h[c];
    k.off = offset[c];
    k.last = static_cast<float>(S - 1);
    k.S = S;
    k.small = S <= kLutMax;
    const float* end = k.tab + (S - 1) * M;  // the slopes at the range's ends, as forward computes them
    const float lower = k.tab[1], upper = M == 2 ? end[1] : (end[3] * 3.f + end[2] * 2.f) + end[1];
    k.lc = lower == 0.f ? -1.f : -INFINITY;
    k.uc = upper == 0.f ? 1.f : INFINITY;
    k.flat = lower == 0.f || upper == 0.f;
    if (k.small)
      for (int p = 0; p < M; ++p) k.lut[p].set(k.tab + p, S, M);
  }
};

// Checks x and the table's shape (C, S, m); the pointers are left to the caller.
inline SplineArgs spline_shape(const at::Tensor& x, int64_t C, int64_t S, int64_t m) {
  check_float_cpu(x, "x");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  TORCH_CHECK(m == 2 || m == 4, "table must be (C, S, 2 or 4)");
  TORCH_CHECK(S >= 1 && kCopies * S * m < (int64_t{1} << 31), "table too large");
  return SplineArgs{view_of(x, C), S, m, nullptr, nullptr, nullptr, {}, {}};
}

inline SplineArgs spline_args(const at::Tensor& x, const at::Tensor& table, const at::Tensor& inv_h,
                              const at::Tensor& offset) {
  check_float_cpu(table, "table");
  TORCH_CHECK(table.dim() == 3, "table must be (C, S, 2 or 4)");
  const int64_t C = table.size(0);
  SplineArgs s = spline_shape(x, C, table.size(1), table.size(2));
  s.keep[0] = table.contiguous();
  s.keep[1] = inv_h.to(at::kFloat).reshape({-1}).contiguous();
  s.keep[2] = offset.to(at::kFloat).reshape({-1}).contiguous();
  TORCH_CHECK(s.keep[1].numel() == C && s.keep[2].numel() == C, "inv_h and offset need one value per channel");
  s.table = s.keep[0].data_ptr<float>();
  s.inv_h = s.keep[1].data_ptr<float>();
  s.offset = s.keep[2].data_ptr<float>();
  return s;
}

template <int M>
void spline_fwd_m(const SplineArgs& s, const float* xp, float* yp) {
  for_items(s.v, [&](const Item& it) {
    Spline<M> k;
    s.channel(it.c, k);
    visit(s.v, it, xp, nullptr, yp, [&](const float* xs, const float*, float* ys, int64_t n) {
      run<1>(xs, nullptr, ys, n, [&](const vf* xv, const vf*, vf* yv, int64_t) ACTLAB_BODY { yv[0] = k.forward(xv[0]); });
    });
  });
}

template <int M>
void spline_bwd_m(const SplineArgs& s, const float* xp, const float* gp, float* gxp, double* sums) {
  const int64_t nacc = s.S * M;
  reduce_items(s.v, nacc, sums, [&](const Item& it, double* row) {
    Spline<M> k;
    s.channel(it.c, k);
    std::vector<double> acc(kCopies * nacc, 0.0);
    // Float tables where they are small next to a run (no conversion per element); flushed into
    // acc before they hold more than kChunk elements' terms, like the other kernels' sums.
    const bool floats = kCopies * nacc <= 2 * kChunk;
    std::vector<float> facc(floats ? kCopies * nacc : 0, 0.f);
    int64_t pending = 0;
    auto flush = [&] {
      for (int64_t i = 0; i < kCopies * nacc; ++i) acc[i] += facc[i];
      std::fill(facc.begin(), facc.end(), 0.f);
      pending = 0;
    };
    visit(s.v, it, xp, gp, gxp, [&](const float* xs, const float* gs, float* ys, int64_t n) {
      if (floats && pending + n > kChunk) flush();
      k.backward(xs, gs, ys, n, acc.data(), floats ? facc.data() : nullptr);
      pending += n;
    });
    if (floats) flush();
    for (int q = 0; q < kCopies; ++q)
      for (int64_t i = 0; i < nacc; ++i) row[i] += acc[q * nacc + i];
  });
}

}  // namespace
}  // namespace actlab
