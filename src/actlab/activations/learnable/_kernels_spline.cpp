// spline (PiecewiseFn): table (C, S, m), m = 2 (linear: value, slope) or 4 (cubic in t).
// u = offset + x inv_h is x in segment units; segment i = trunc(clamp(u, 0, S - 1)),
// t = u - i; the cubic is evaluated at tc = clamp(t, 0, 1) and continued with its
// end tangent, the linear segments extrapolate by themselves.
//
// Backward scatters d f / d table[i, p] = tc^p + p tc^(p-1) (t - tc), times g, into
// per-item double tables; element j adds to copy j % kCopies of the table, so that
// neighbours in one segment do not queue on one address.
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
  float inv_h, off, last;
  int64_t S;
  bool small;        // S <= kLutMax: coefficients in lookup tables
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
    if (M == 2) return coef(0, seg) + coef(1, seg) * t;
    vf c0 = coef(0, seg), c1 = coef(1, seg), c2 = coef(2, seg), c3 = coef(3, seg);
    vf val = ((c3 * tc + c2) * tc + c1) * tc + c0;
    vf der = (c3 * 3.f * tc + c2 * 2.f) * tc + c1;
    return val + der * (t - tc);
  }

  // grad_input of a run of n <= kChunk elements. The table gradient terms go to
  // `terms` first, M consecutive floats per element, and are then added into acc
  // (kCopies tables of S * M doubles) by a scalar loop that converts and adds
  // all M terms of an element as one vector.
  ACTLAB_INLINE void backward(const float* x, const float* g, float* gx, int64_t n, double* acc) const {
    alignas(64) float terms[M * (kChunk + W)];
    alignas(64) int32_t rows[kChunk + W];
    const vi lanes = copy_offset();
    run<1>(x, g, gx, n, [&](const vf* xp, const vf* gp, vf* gxp, int64_t at) {
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

struct SplineArgs {
  View v;
  int64_t S, m;
  at::Tensor table, inv_h, offset;

  template <int M>
  void channel(int64_t c, Spline<M>& k) const {
    k.tab = table.data_ptr<float>() + c * S * M;
    k.inv_h = inv_h.data_ptr<float>()[c];
    k.off = offset.data_ptr<float>()[c];
    k.last = static_cast<float>(S - 1);
    k.S = S;
    k.small = S <= kLutMax;
    if (k.small)
      for (int p = 0; p < M; ++p) k.lut[p].set(k.tab + p, S, M);
  }
};

SplineArgs spline_args(const at::Tensor& x, const at::Tensor& table, const at::Tensor& inv_h,
                       const at::Tensor& offset) {
  check_float_cpu(x, "x");
  check_float_cpu(table, "table");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  TORCH_CHECK(table.dim() == 3 && (table.size(2) == 2 || table.size(2) == 4), "table must be (C, S, 2 or 4)");
  TORCH_CHECK(table.size(1) >= 1 && kCopies * table.size(1) * table.size(2) < (int64_t{1} << 31), "table too large");
  const int64_t C = table.size(0);
  SplineArgs s{view_of(x, C), table.size(1), table.size(2), table.contiguous(),
               inv_h.to(at::kFloat).reshape({-1}).contiguous(), offset.to(at::kFloat).reshape({-1}).contiguous()};
  TORCH_CHECK(s.inv_h.numel() == C && s.offset.numel() == C, "inv_h and offset need one value per channel");
  return s;
}

template <int M>
void spline_fwd_m(const SplineArgs& s, const float* xp, float* yp) {
  for_items(s.v, [&](const Item& it) {
    Spline<M> k;
    s.channel(it.c, k);
    visit(s.v, it, xp, nullptr, yp, [&](const float* xs, const float*, float* ys, int64_t n) {
      run<1>(xs, nullptr, ys, n, [&](const vf* xv, const vf*, vf* yv, int64_t) { yv[0] = k.forward(xv[0]); });
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
    visit(s.v, it, xp, gp, gxp, [&](const float* xs, const float* gs, float* ys, int64_t n) {
      k.backward(xs, gs, ys, n, acc.data());
    });
    for (int q = 0; q < kCopies; ++q)
      for (int64_t i = 0; i < nacc; ++i) row[i] += acc[q * nacc + i];
  });
}

at::Tensor spline_fwd(const at::Tensor& x, const at::Tensor& table, const at::Tensor& inv_h,
                      const at::Tensor& offset) {
  const SplineArgs s = spline_args(x, table, inv_h, offset);
  at::Tensor y = at::empty_like(x);
  if (s.m == 2) spline_fwd_m<2>(s, x.data_ptr<float>(), y.data_ptr<float>());
  if (s.m == 4) spline_fwd_m<4>(s, x.data_ptr<float>(), y.data_ptr<float>());
  return y;
}

std::tuple<at::Tensor, at::Tensor> spline_bwd(const at::Tensor& g, const at::Tensor& x, const at::Tensor& table,
                                              const at::Tensor& inv_h, const at::Tensor& offset) {
  const SplineArgs s = spline_args(x, table, inv_h, offset);
  check_grad(g, x);
  at::Tensor gx = at::empty_like(x);
  std::vector<double> sums(s.v.C * s.S * s.m);
  if (s.m == 2) spline_bwd_m<2>(s, x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), sums.data());
  if (s.m == 4) spline_bwd_m<4>(s, x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), sums.data());
  at::Tensor gt = at::empty({s.v.C, s.S, s.m}, table.options());
  float* gtp = gt.data_ptr<float>();
  for (size_t i = 0; i < sums.size(); ++i) gtp[i] = static_cast<float>(sums[i]);
  return {gx, gt};
}

// linear_spline (LinearSplineFn): the m = 2 table (v[i], v[i+1] - v[i]), inv_h and
// offset built here from the knot values (C, K) and grid ends lo, hi (C,), with the
// float operations of _autograd._linear_table (PyTorch's S / (hi - lo) is
// reciprocal(hi - lo) * S), so that a call costs one op instead of ten small ones.
SplineArgs linear_args(const at::Tensor& x, const at::Tensor& values, const at::Tensor& lo, const at::Tensor& hi) {
  check_float_cpu(values, "values");
  TORCH_CHECK(values.dim() == 2 && values.size(1) >= 2, "values must be (C, K >= 2)");
  const at::Tensor v = values.contiguous();
  const at::Tensor l = lo.to(at::kFloat).reshape({-1}).contiguous(), h = hi.to(at::kFloat).reshape({-1}).contiguous();
  const int64_t C = v.size(0), K = v.size(1), S = K - 1;
  TORCH_CHECK(l.numel() == C && h.numel() == C, "lo and hi need one value per channel");
  at::Tensor table = at::empty({C, S, 2}, v.options()), inv_h = at::empty({C}, v.options()),
             offset = at::empty({C}, v.options());
  const float *vp = v.data_ptr<float>(), *lp = l.data_ptr<float>(), *hp = h.data_ptr<float>();
  float *tp = table.data_ptr<float>(), *ip = inv_h.data_ptr<float>(), *op = offset.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const float* row = vp + c * K;
    for (int64_t i = 0; i < S; ++i) {
      tp[(c * S + i) * 2] = row[i];
      tp[(c * S + i) * 2 + 1] = row[i + 1] - row[i];
    }
    const float r = 1.f / (hp[c] - lp[c]);
    ip[c] = r * static_cast<float>(S);
    op[c] = -lp[c] * ip[c];
  }
  return spline_args(x, table, inv_h, offset);
}

at::Tensor linear_spline_fwd(const at::Tensor& x, const at::Tensor& values, const at::Tensor& lo,
                             const at::Tensor& hi) {
  const SplineArgs s = linear_args(x, values, lo, hi);
  at::Tensor y = at::empty_like(x);
  spline_fwd_m<2>(s, x.data_ptr<float>(), y.data_ptr<float>());
  return y;
}

// The values' gradient folds the table's in double: v[i] gets d/d value[i] - d/d slope[i],
// v[i+1] gets d/d slope[i].
std::tuple<at::Tensor, at::Tensor> linear_spline_bwd(const at::Tensor& g, const at::Tensor& x,
                                                     const at::Tensor& values, const at::Tensor& lo,
                                                     const at::Tensor& hi) {
  const SplineArgs s = linear_args(x, values, lo, hi);
  check_grad(g, x);
  at::Tensor gx = at::empty_like(x);
  std::vector<double> sums(s.v.C * s.S * 2);
  spline_bwd_m<2>(s, x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), sums.data());
  const int64_t K = s.S + 1;
  at::Tensor gv = at::empty({s.v.C, K}, values.options());
  float* gvp = gv.data_ptr<float>();
  for (int64_t c = 0; c < s.v.C; ++c) {
    const double* row = sums.data() + c * s.S * 2;
    double carry = 0.0;  // d/d slope[i - 1]
    for (int64_t i = 0; i < s.S; ++i) {
      gvp[c * K + i] = static_cast<float>(row[2 * i] - row[2 * i + 1] + carry);
      carry = row[2 * i + 1];
    }
    gvp[c * K + s.S] = static_cast<float>(carry);
  }
  return {gx, gv};
}

}  // namespace
}  // namespace actlab

TORCH_LIBRARY_FRAGMENT(actlab_learnable, m) {
  m.def("spline_fwd(Tensor x, Tensor table, Tensor inv_h, Tensor offset) -> Tensor");
  m.def("spline_bwd(Tensor g, Tensor x, Tensor table, Tensor inv_h, Tensor offset) -> (Tensor, Tensor)");
  m.def("linear_spline_fwd(Tensor x, Tensor values, Tensor lo, Tensor hi) -> Tensor");
  m.def("linear_spline_bwd(Tensor g, Tensor x, Tensor values, Tensor lo, Tensor hi) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(actlab_learnable, CPU, m) {
  m.impl("spline_fwd", &actlab::spline_fwd);
  m.impl("spline_bwd", &actlab::spline_bwd);
  m.impl("linear_spline_fwd", &actlab::linear_spline_fwd);
  m.impl("linear_spline_bwd", &actlab::linear_spline_bwd);
}
