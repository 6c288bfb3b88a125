// rational (safe PAU): P(x) / Q(|x|), P = sum_j a_j x^j (m + 1 terms),
// Q = 1 + sum_k |b_k| |x|^k, both by Horner's rule in the reference's order. Where a power
// of x could overflow (|x| > far, far^max(m, n) <= 2^100), the forward takes the reference's
// reversed polynomials in w = 1/x instead (_autograd_rational._rational_value), so that huge and
// infinite inputs give its limits, not inf / inf; elsewhere both forms agree to rounding.
// The backward likewise takes the reference's powers scaled by max(1, |x|)^-n there.
#include "_kernels.h"

namespace actlab {
namespace {

struct Rational {
  int np, nq;  // numerator terms (m + 1), denominator degree n
  int rp, rq;  // the same without exact zeros at the top: the reversed form's degrees
  float far;
  float a[kMaxTerms], da[kMaxTerms], b[kMaxTerms + 1], db[kMaxTerms];  // b[0] = 1, b[k] = |b_k|
  float ar[kMaxTerms], br[kMaxTerms + 1];  // reversed: ar[i] = a_{m'-i}, br[i] = b[n'-i] (m' = rp - 1, n' = rq)

  static ACTLAB_INLINE vf horner(const float* c, int n, vf x) {
    vf acc = splat(c[n - 1]);
    _Pragma("GCC unroll 16") for (int j = n - 2; j >= 0; --j) acc = acc * x + c[j];
    return acc;
  }

  template <int NP = 0, int NQ = 0>
  ACTLAB_INLINE vf forward(vf x) const {
    vf y = horner(a, NP ? NP : np, x) / horner(b, (NQ ? NQ : nq) + 1, vabs(x));
    const vi big = vabs(x) > splat(far);  // false for NaN, which P / Q keeps
    return any(big) ? vselect(big, reversed(x), y) : y;
  }

  // sign(x)^m |x|^(m-n) P~(w) / Q~(|w|), w = 1/x: +-inf gives the limit. In the reference's
  // order, scale = |x|^(m-n) sign(x)^m first, so that it overflows where the reference does
  // (num=7, den=2 at |x| = 1e8: inf, not the product's 4.6e37).
  vf reversed(vf x) const {
    const vf w = splat(1.f) / x, aw = vabs(w), ax = vabs(x);
    vf scale = splat(1.f);
    for (int e = rp - 1 - rq; e > 0; --e) scale *= ax;
    if (rp - 1 < rq) {
      for (int e = rp - 1 - rq; e < 0; ++e) scale *= ax;
      scale = splat(1.f) / scale;
    }
    if ((rp - 1) % 2) scale = vselect(x < splat(0.f), -scale, scale);
    return scale * horner(ar, rp, w) / horner(br, rq + 1, aw);
  }

  // Whether a run of x holds an |x| > far (NaN is not: both backward forms keep it).
  bool any_far(const float* xs, int64_t n) const {
    vi m{};
    int64_t i = 0;
    for (; i + W <= n; i += W) m |= vabs(load(xs + i)) > splat(far);
    bool r = any(m);
    for (; i < n; ++i) r = r || std::fabs(xs[i]) > far;
    return r;
  }

  // Adds g x^j / Q to S[j] (j < np) and -g r |x|^k / Q to S[np + k - 1] (k = 1..nq); returns
  // grad_input. Powers of x as they are: used for runs where every |x| <= far, where they cannot
  // overflow and agree with far_backward to rounding (about twice as fast). NP, NQ > 0 fix np
  // and nq at compile time (loops unrolled, S in registers where the caller's S is local).
  template <int NP = 0, int NQ = 0>
  ACTLAB_INLINE vf backward(vf x, vf g, vf* S) const {
    const int np = NP ? NP : this->np, nq = NQ ? NQ : this->nq;
    vf ax = vabs(x);
    vf q = horner(b, nq + 1, ax), iq = splat(1.f) / q, r = horner(a, np, x) * iq, gq = g * iq;
    vf dp = np > 1 ? horner(da, np - 1, x) : vf{};
    vf dq = horner(db, nq, ax);
    vf pw = gq;
    S[0] += pw;
    _Pragma("GCC unroll 16") for (int j = 1; j < np; ++j) {
      pw = pw * x;
      S[j] += pw;
    }
    pw = -(gq * r);
    _Pragma("GCC unroll 16") for (int k = 0; k < nq; ++k) {
      pw = pw * ax;
      S[np + k] += pw;
    }
    return gq * (dp - r * dq * sign(x));
  }

  // torch.sign: 0 at 0, NaN stays NaN (x * 0).
  static ACTLAB_INLINE vf sign(vf x) {
    return vselect(x > splat(0.f), splat(1.f), vselect(x < splat(0.f), splat(-1.f), x * 0.f));
  }

  // The reference's backward (_autograd_rational.RationalFn.backward): every power of x is
  // divided by s^n, s = max(1, |x|), as pw[j] = u^j s^(j-n), pa[k] = |u|^k s^(k-n) with
  // u = clamp(x, -1, 1), so that no power overflows at a huge finite x; sums as backward.
  ACTLAB_INLINE vf far_backward(vf x, vf g, vf* S) const {
    const vf ax = vabs(x);
    const vf s = vselect(ax < splat(1.f), splat(1.f), ax);  // NaN stays NaN
    const vf u = clamp(x, -1.f, 1.f), au = vabs(u), inv = splat(1.f) / s;
    vf sp[2 * kMaxTerms];  // sp[nq + e] = s^e, e = -nq..np-1-nq
    vf* at = sp + nq;
    at[0] = splat(1.f);
    for (int e = 1; e <= nq; ++e) at[-e] = at[1 - e] * inv;
    for (int e = 1; e <= np - 1 - nq; ++e) at[e] = at[e - 1] * s;
    vf pw[kMaxTerms], pa[kMaxTerms + 1];
    pw[0] = pa[0] = at[-nq];
    vf up = u, aup = au;
    for (int j = 1; j < np || j <= nq; ++j) {
      if (j < np) pw[j] = j == nq ? up : up * at[j - nq];
      if (j <= nq) pa[j] = j == nq ? aup : aup * at[j - nq];
      up = up * u;
      aup = aup * au;
    }
    vf p = a[0] * pw[0], q = pa[0], dp{}, dq{};
    for (int j = 1; j < np; ++j) p += a[j] * pw[j];
    for (int k = 1; k <= nq; ++k) q += b[k] * pa[k];
    if (np > 1) dp = da[0] * pw[0];
    for (int j = 2; j < np; ++j) dp += da[j - 1] * pw[j - 1];
    dq = db[0] * pa[0];
    for (int k = 2; k <= nq; ++k) dq += db[k - 1] * pa[k - 1];
    const vf r = p / q, gq = g / q;
    for (int j = 0; j < np; ++j) S[j] += gq * pw[j];
    const vf gqr = -(gq * r);
    for (int k = 1; k <= nq; ++k) S[np + k - 1] += gqr * pa[k];
    return gq * (dp - r * dq * sign(x));
  }
};

struct RationalArgs {
  View v;
  at::Tensor a, b;

  Rational channel(int64_t c) const {
    Rational k;
    k.np = static_cast<int>(a.size(1));
    k.nq = static_cast<int>(b.size(1));
    const float* ac = a.data_ptr<float>() + c * k.np;
    const float* bc = b.data_ptr<float>() + c * k.nq;
    for (int j = 0; j < k.np; ++j) k.a[j] = ac[j];
    for (int j = 1; j < k.np; ++j) k.da[j - 1] = ac[j] * static_cast<float>(j);
    k.b[0] = 1.f;
    for (int j = 1; j <= k.nq; ++j) {
      k.b[j] = std::fabs(bc[j - 1]);
      k.db[j - 1] = k.b[j] * static_cast<float>(j);
    }
    k.rp = k.np, k.rq = k.nq;
    while (k.rp > 1 && k.a[k.rp - 1] == 0.f) --k.rp;
    while (k.rq > 0 && k.b[k.rq] == 0.f) --k.rq;
    for (int j = 0; j < k.rp; ++j) k.ar[j] = k.a[k.rp - 1 - j];
    for (int j = 0; j <= k.rq; ++j) k.br[j] = k.b[k.rq - j];
    k.far = std::exp2(100.f / static_cast<float>(std::max(k.np - 1, k.nq)));
    return k;
  }
};

RationalArgs rational_args(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b) {
  check_float_cpu(x, "x");
  check_float_cpu(a, "a");
  check_float_cpu(b, "b");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(0), "a (C, m+1) and b (C, n) expected");
  TORCH_CHECK(a.size(1) >= 1 && b.size(1) >= 1 && a.size(1) + b.size(1) <= kMaxTerms,
              "a and b may hold at most ", kMaxTerms, " coefficients together");
  return {view_of(x, a.size(0)), a.contiguous(), b.contiguous()};
}

// Sizes (np, nq) with kernels of their own, loops unrolled: the default rational(num=5, den=4)
// and num=3, den=2; f gets them as integral constants, any other sizes as 0 (runtime loops).
template <class F>
void with_sizes(int np, int nq, F&& f) {
  using std::integral_constant;
  if (np == 6 && nq == 4)
    f(integral_constant<int, 6>{}, integral_constant<int, 4>{});
  else if (np == 4 && nq == 2)
    f(integral_constant<int, 4>{}, integral_constant<int, 2>{});
  else
    f(integral_constant<int, 0>{}, integral_constant<int, 0>{});
}

at::Tensor rational_fwd(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b) {
  const RationalArgs s = rational_args(x, a, b);
  at::Tensor y = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  with_sizes(static_cast<int>(s.a.size(1)), static_cast<int>(s.b.size(1)), [&](auto np, auto nq) {
    for_items(s.v, [&](const Item& it) {
      const Rational k = s.channel(it.c);
      visit(s.v, it, xp, nullptr, yp, [&](const float* xs, const float*, float* ys, int64_t n) {
        run<1>(xs, nullptr, ys, n, [&](const vf* xv, const vf*, vf* yv, int64_t) {
          yv[0] = k.forward<decltype(np)::value, decltype(nq)::value>(xv[0]);
        });
      });
    });
  });
  return y;
}

// Rational::backward over a run; with fixed sizes the sums live in a local array meanwhile.
template <int NP, int NQ>
void near_run(const Rational& k, const float* xs, const float* gs, float* ys, int64_t n, vf* sums) {
  if constexpr (NP > 0) {
    vf S[NP + NQ] = {};
    run<1>(xs, gs, ys, n, [&](const vf* xv, const vf* gv, vf* yv, int64_t) {
      yv[0] = k.backward<NP, NQ>(xv[0], gv[0], S);
    });
    for (int j = 0; j < NP + NQ; ++j) sums[j] += S[j];
  } else {
    run<1>(xs, gs, ys, n, [&](const vf* xv, const vf* gv, vf* yv, int64_t) { yv[0] = k.backward(xv[0], gv[0], sums); });
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rational_bwd(const at::Tensor& g, const at::Tensor& x,
                                                            const at::Tensor& a, const at::Tensor& b) {
  const RationalArgs s = rational_args(x, a, b);
  check_grad(g, x);
  at::Tensor gx = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* gxp = gx.data_ptr<float>();
  const int np = static_cast<int>(s.a.size(1)), nq = static_cast<int>(s.b.size(1)), nacc = np + nq;
  std::vector<double> sums(s.v.C * nacc);
  reduce_items(s.v, nacc, sums.data(), [&](const Item& it, double* row) {
    const Rational k = s.channel(it.c);
    Sums acc(nacc);
    visit(s.v, it, xp, gp, gxp, [&](const float* xs, const float* gs, float* ys, int64_t n) {
      // Chosen per run, not per vector: a call or branch to the far form in the hot loop cost 10-15 %.
      if (k.any_far(xs, n))
        run<1>(xs, gs, ys, n, [&](const vf* xv, const vf* gv, vf* yv, int64_t) {
          yv[0] = k.far_backward(xv[0], gv[0], acc.v);
        });
      else
        with_sizes(k.np, k.nq, [&](auto np, auto nq) {
          near_run<decltype(np)::value, decltype(nq)::value>(k, xs, gs, ys, n, acc.v);
        });
      acc.flush();
    });
    acc.total(row);
  });
  at::Tensor ga = at::empty({s.v.C, np}, a.options()), gb = at::empty({s.v.C, nq}, b.options());
  const float* bp = s.b.data_ptr<float>();
  for (int64_t c = 0; c < s.v.C; ++c) {
    for (int j = 0; j < np; ++j) ga.data_ptr<float>()[c * np + j] = static_cast<float>(sums[c * nacc + j]);
    for (int k = 0; k < nq; ++k) {
      const float bk = bp[c * nq + k];
      const double sign = bk > 0.f ? 1.0 : (bk < 0.f ? -1.0 : 0.0);  // d|b|/db as torch.sign
      gb.data_ptr<float>()[c * nq + k] = static_cast<float>(sums[c * nacc + np + k] * sign);
    }
  }
  return {gx, ga, gb};
}

}  // namespace
}  // namespace actlab

TORCH_LIBRARY_FRAGMENT(actlab_learnable, m) {
  m.def("rational_fwd(Tensor x, Tensor a, Tensor b) -> Tensor");
  m.def("rational_bwd(Tensor g, Tensor x, Tensor a, Tensor b) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(actlab_learnable, CPU, m) {
  m.impl("rational_fwd", &actlab::rational_fwd);
  m.impl("rational_bwd", &actlab::rational_bwd);
}
