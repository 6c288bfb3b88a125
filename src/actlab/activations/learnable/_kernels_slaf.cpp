// slaf's operators: the arguments, per-channel parameters and the dispatch over basis kinds;
// the per-element maths and its description are in _kernels_slaf.h.
#include "_kernels_slaf.h"

namespace actlab {
namespace {

struct SlafArgs {
  View v;
  int kind, K;
  double inv_range;
  std::vector<float> a;       // (C, K): coef * scale
  std::vector<double> dends;  // (2, K)
  std::optional<at::Tensor> w;
  std::vector<double> h, be, centre;  // monic scales and recurrence (three-term); rbf centres
  double width = 1.0;

  Slaf channel(int64_t c) const {
    Slaf k{};
    k.nk = K;
    k.inv_r = static_cast<float>(inv_range);
    k.inv_w = static_cast<float>(1.0 / width);
    k.dscale = static_cast<float>(-2.0 / width);
    const float* ac = a.data() + c * K;
    const double* dd = dends.data();
    double lo = 0.0, hi = 0.0;
    for (int j = 0; j < K; ++j) {
      k.a[j] = static_cast<float>(ac[j] * h[j]);
      k.be[j] = static_cast<float>(be[j]);
      k.centre[j] = static_cast<float>(centre[j]);
      if (kind != kFourier) {
        lo += static_cast<double>(ac[j]) * dd[j];
        hi += static_cast<double>(ac[j]) * dd[K + j];
      }
    }
    for (int j = 0; kind == kRbfRatios && j < K; ++j) {  // rbf by ratios only
      const double rb = ac[j] * rbf_factor(j, K);
      k.rb[j] = static_cast<float>(rb);
      k.rbd[j] = static_cast<float>(rb * (j - (K - 1) / 2) * kSqrtLog2E);
    }
    k.inv_ws = static_cast<float>(kSqrtLog2E / width);
    k.two_s = static_cast<float>(2.0 * kSqrtLog2E);
    k.dscale_s = static_cast<float>(-2.0 / width / kSqrtLog2E);
    k.s_lo = static_cast<float>(lo);
    k.s_hi = static_cast<float>(hi);
    k.hybrid = w.has_value();
    k.w = w ? w->data_ptr<float>()[c] : 0.f;
    k.r_max = static_cast<float>(1.0 / inv_range);
    if (k.hybrid && kind != kFourier) k.s_hi = static_cast<float>(hi + static_cast<double>(k.w) / inv_range);
    k.lc = k.s_lo == 0.f ? -1.f : -INFINITY;
    k.uc = k.s_hi == 0.f ? 1.f : INFINITY;
    k.flat = kind != kFourier && (k.s_lo == 0.f || k.s_hi == 0.f);
    return k;
  }
};

// a = coef * scale (per term), the module's product, taken here so that a call makes no
// autograd node for it; as PyTorch's float multiply. Plain vectors, not tensors: a call
// at 64 elements spent about a third of its C++ time making small tensors.
std::vector<float> scaled(const at::Tensor& coef, const std::optional<at::Tensor>& scale) {
  const at::Tensor c = coef.contiguous();
  const float* cp = c.data_ptr<float>();
  std::vector<float> a(cp, cp + c.numel());
  if (!scale.has_value()) return a;
  check_float_cpu(*scale, "scale");
  TORCH_CHECK(scale->numel() == coef.size(1), "scale must have one value per term");
  const at::Tensor sc = scale->contiguous();
  const float* sp = sc.data_ptr<float>();
  for (size_t i = 0; i < a.size(); ++i) a[i] *= sp[i % coef.size(1)];
  return a;
}

std::vector<double> as_doubles(const at::Tensor& t) {
  if (t.scalar_type() == at::kDouble) {
    const at::Tensor d = t.contiguous();
    return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
  const at::Tensor f = t.scalar_type() == at::kFloat ? t.contiguous() : t.to(at::kFloat).contiguous();
  return std::vector<double>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

SlafArgs slaf_args(const at::Tensor& x, const at::Tensor& coef, const std::optional<at::Tensor>& scale,
                   const std::optional<at::Tensor>& w, const at::Tensor& dends, at::ArrayRef<double> rec,
                   double inv_range, int64_t kind) {
  check_float_cpu(x, "x");
  check_float_cpu(coef, "coef");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  TORCH_CHECK(coef.dim() == 2 && coef.size(1) >= 1 && coef.size(1) <= kMaxTerms,
              "coef must be (C, K) with K <= ", kMaxTerms);
  TORCH_CHECK(kind >= 0 && kind <= 2, "unknown slaf basis kind ", kind);
  const int K = static_cast<int>(coef.size(1));
  SlafArgs s{view_of(x, coef.size(0)), static_cast<int>(kind), K, inv_range, scaled(coef, scale),
             as_doubles(dends), std::nullopt, std::vector<double>(K, 1.0),
             std::vector<double>(K, 0.0), std::vector<double>(K, 0.0)};
  TORCH_CHECK(kind == kFourier || static_cast<int>(s.dends.size()) == 2 * K, "dends must be (2, K)");
  if (kind == kThreeTerm) {
    TORCH_CHECK(static_cast<int>(rec.size()) >= std::max(1, 2 * K - 3), "rec must be [a0, al_1, ga_1, ...]");
    bool power = true;
    if (K > 1) s.h[1] = rec[0];
    for (int k = 1; k + 1 < K; ++k) {
      s.h[k + 1] = rec[2 * k - 1] * s.h[k];
      s.be[k] = rec[2 * k] * s.h[k - 1] / s.h[k + 1];
      power = power && rec[2 * k] == 0.0;
    }
    if (power) s.kind = kPower;
  } else if (kind == kRbf) {
    TORCH_CHECK(static_cast<int>(rec.size()) == K + 1, "rec must be [width, centres]");
    s.width = rec[0];
    for (int k = 0; k < K; ++k) s.centre[k] = rec[k + 1];
    if (K <= kRbfRatiosMax) s.kind = kRbfRatios;
  }
  if (w.has_value()) {
    check_float_cpu(*w, "w");
    TORCH_CHECK(w->numel() == coef.size(0), "w must have one value per channel");
    s.w = w->contiguous();
  }
  return s;
}

// Term counts with kernels of their own (KF = K: loops unrolled, sums in registers): the
// default degree 4 (K = 5; fourier 9) and its neighbours; any other K runs the general ones.
template <class F>
void with_fixed_k(int K, F&& f) {
  switch (K) {
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 9: f(std::integral_constant<int, 9>{}); break;
    default: f(std::integral_constant<int, 0>{});
  }
}

template <int KIND>
void slaf_fwd_kind(const SlafArgs& s, const float* xp, float* yp) {
  with_fixed_k(s.K, [&](auto kf) {
    constexpr int KF = decltype(kf)::value;
    for_items(s.v, [&](const Item& it) {
      const Slaf k = s.channel(it.c);
      visit(s.v, it, xp, nullptr, yp, [&](const float* xs, const float*, float* ys, int64_t n) {
        run<kFwdBlock>(xs, nullptr, ys, n, [&](const vf* xv, const vf*, vf* yv, int64_t) {
          k.forward<KIND, kFwdBlock, KF>(xv, yv);
        });
      });
    });
  });
}

template <int KIND>
void slaf_bwd_kind(const SlafArgs& s, const float* xp, const float* gp, float* gxp, double* sums) {
  const int nacc = s.K + 3;
  with_fixed_k(s.K, [&](auto kf) {
    constexpr int KF = decltype(kf)::value;
    reduce_items(s.v, nacc, sums, [&](const Item& it, double* row) {
      const Slaf k = s.channel(it.c);
      Sums acc(nacc);
      visit(s.v, it, xp, gp, gxp, [&](const float* xs, const float* gs, float* ys, int64_t n) {
        if constexpr (KF > 0) {  // the run's sums in a local array, which the unrolled loops keep in registers
          vf S[KF + 3] = {};
          run<bwd_block(KIND)>(xs, gs, ys, n, [&](const vf* xv, const vf* gv, vf* yv, int64_t) {
            k.backward<KIND, bwd_block(KIND), KF>(xv, gv, yv, S);
          });
          for (int j = 0; j < KF + 3; ++j) acc.v[j] += S[j];
        } else {
          run<bwd_block(KIND)>(xs, gs, ys, n, [&](const vf* xv, const vf* gv, vf* yv, int64_t) {
            k.backward<KIND, bwd_block(KIND)>(xv, gv, yv, acc.v);
          });
        }
        acc.flush();
      });
      acc.total(row);
    });
  });
}

at::Tensor slaf_fwd(const at::Tensor& x, const at::Tensor& coef, const std::optional<at::Tensor>& scale,
                    const std::optional<at::Tensor>& w, const at::Tensor& dends, at::ArrayRef<double> rec,
                    double inv_range, int64_t kind) {
  const SlafArgs s = slaf_args(x, coef, scale, w, dends, rec, inv_range, kind);
  at::Tensor y = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  switch (s.kind) {
    case kThreeTerm: slaf_fwd_kind<kThreeTerm>(s, xp, yp); break;
    case kPower: slaf_fwd_kind<kPower>(s, xp, yp); break;
    case kFourier: slaf_fwd_kind<kFourier>(s, xp, yp); break;
    case kRbfRatios: slaf_fwd_kind<kRbfRatios>(s, xp, yp); break;
    default: slaf_fwd_kind<kRbf>(s, xp, yp);
  }
  return y;
}

// Returns the gradients of x, coef (d/da times scale, in float as PyTorch's) and w.
std::tuple<at::Tensor, at::Tensor, at::Tensor> slaf_bwd(const at::Tensor& g, const at::Tensor& x,
                                                        const at::Tensor& coef, const std::optional<at::Tensor>& scale,
                                                        const std::optional<at::Tensor>& w, const at::Tensor& dends,
                                                        at::ArrayRef<double> rec, double inv_range, int64_t kind) {
  const SlafArgs s = slaf_args(x, coef, scale, w, dends, rec, inv_range, kind);
  check_grad(g, x);
  at::Tensor gx = at::empty_like(x);
  const int K = s.K, nacc = K + 3;
  std::vector<double> sums(s.v.C * nacc);
  const float* xp = x.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* gxp = gx.data_ptr<float>();
  switch (s.kind) {
    case kThreeTerm: slaf_bwd_kind<kThreeTerm>(s, xp, gp, gxp, sums.data()); break;
    case kPower: slaf_bwd_kind<kPower>(s, xp, gp, gxp, sums.data()); break;
    case kFourier: slaf_bwd_kind<kFourier>(s, xp, gp, gxp, sums.data()); break;
    case kRbfRatios: slaf_bwd_kind<kRbfRatios>(s, xp, gp, gxp, sums.data()); break;
    default: slaf_bwd_kind<kRbf>(s, xp, gp, gxp, sums.data());
  }
  at::Tensor ga = at::empty({s.v.C, K}, coef.options());
  at::Tensor gw = at::empty({s.w ? s.v.C : 0}, coef.options());
  const at::Tensor sc = scale.has_value() ? scale->contiguous() : at::Tensor();
  const double* dd = s.dends.data();
  for (int64_t c = 0; c < s.v.C; ++c) {
    const double* r = sums.data() + c * nacc;
    for (int k = 0; k < K; ++k) {
      double v = r[k] * s.h[k] * (s.kind == kRbfRatios ? rbf_factor(k, K) : 1.0);  // the sums' left-out factors
      if (kind != kFourier) v += r[K + 1] * dd[k] + r[K] * dd[K + k];  // the tails
      ga.data_ptr<float>()[c * K + k] = static_cast<float>(v) * (sc.defined() ? sc.data_ptr<float>()[k] : 1.f);
    }
    if (s.w) gw.data_ptr<float>()[c] = static_cast<float>(r[K + 2]);
  }
  return {gx, ga, gw};
}

}  // namespace
}  // namespace actlab

TORCH_LIBRARY_FRAGMENT(actlab_learnable, m) {
  m.def("slaf_fwd(Tensor x, Tensor coef, Tensor? scale, Tensor? w, Tensor dends, float[] rec, float inv_range,"
        " int kind) -> Tensor");
  m.def("slaf_bwd(Tensor g, Tensor x, Tensor coef, Tensor? scale, Tensor? w, Tensor dends, float[] rec,"
        " float inv_range, int kind) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(actlab_learnable, CPU, m) {
  m.impl("slaf_fwd", &actlab::slaf_fwd);
  m.impl("slaf_bwd", &actlab::slaf_bwd);
}
