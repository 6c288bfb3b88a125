// linear_spline (LinearSplineFn, m = 2) and cubic_spline (CubicSplineFn, m = 4): the
// segment table, inv_h and offset built here from the knot values (C, K) and grid ends
// lo, hi (C,), with the float operations of the references (_autograd_spline._linear_table and
// _autograd_spline.cubic_table; PyTorch's S / (hi - lo) is reciprocal(hi - lo) * S), so that a
// call costs one op instead of ten small ones; backward folds the table's gradient
// into the values' in double.
#include "_kernels_spline.h"

namespace actlab {
namespace {

// Uniform cubic B-spline on one segment: coefficient q of t^q is sum_p v[i + p] M[p][q],
// M = kCubic / 6 rounded to float as the reference's _CUBIC.to(float32).
constexpr double kCubic[4][4] = {{1, -3, 3, -1}, {4, 0, -6, 3}, {1, 3, 3, -3}, {0, 0, 0, 1}};

float cubic_weight(int p, int q) { return static_cast<float>(kCubic[p][q] / 6.0); }

// No fused multiply-add, so that the table is PyTorch's bit for bit (products, then sums in p order).
__attribute__((optimize("fp-contract=off"))) SplineArgs values_args(const at::Tensor& x, const at::Tensor& values,
                                                                     const at::Tensor& lo, const at::Tensor& hi,
                                                                     int m) {
  check_float_cpu(values, "values");
  check_float_cpu(lo, "lo");
  check_float_cpu(hi, "hi");
  TORCH_CHECK(values.dim() == 2 && values.size(1) >= m, "values must be (C, K >= ", m, ")");
  const at::Tensor v = values.contiguous(), l = lo.contiguous(), h = hi.contiguous();
  const int64_t C = v.size(0), K = v.size(1), S = K - (m - 1);
  TORCH_CHECK(l.numel() == C && h.numel() == C, "lo and hi need one value per channel");
  SplineArgs s = spline_shape(x, C, S, m);
  s.own.resize(C * S * m + 2 * C);
  float *tp = s.own.data(), *ip = tp + C * S * m, *op = ip + C;
  s.table = tp, s.inv_h = ip, s.offset = op;
  const float *vp = v.data_ptr<float>(), *lp = l.data_ptr<float>(), *hp = h.data_ptr<float>();
  float w[4][4];
  for (int p = 0; p < 4; ++p)
    for (int q = 0; q < 4; ++q) w[p][q] = cubic_weight(p, q);
  for (int64_t c = 0; c < C; ++c) {
    const float* row = vp + c * K;
    for (int64_t i = 0; i < S; ++i) {
      float* seg = tp + (c * S + i) * m;
      if (m == 2) {
        seg[0] = row[i];
        seg[1] = row[i + 1] - row[i];
        continue;
      }
      for (int q = 0; q < 4; ++q) {
        float acc = row[i] * w[0][q];
        for (int p = 1; p < 4; ++p) acc += row[i + p] * w[p][q];
        seg[q] = acc;
      }
    }
    const float r = 1.f / (hp[c] - lp[c]);
    ip[c] = r * static_cast<float>(S);
    op[c] = -lp[c] * ip[c];
  }
  return s;
}

at::Tensor values_fwd(const at::Tensor& x, const at::Tensor& values, const at::Tensor& lo, const at::Tensor& hi,
                      int m) {
  const SplineArgs s = values_args(x, values, lo, hi, m);
  at::Tensor y = at::empty_like(x);
  if (m == 2) spline_fwd_m<2>(s, x.data_ptr<float>(), y.data_ptr<float>());
  if (m == 4) spline_fwd_m<4>(s, x.data_ptr<float>(), y.data_ptr<float>());
  return y;
}

// Linear: v[i] gets d/d value[i] - d/d slope[i], v[i+1] gets d/d slope[i]. Cubic: v[i + p]
// gets sum_q d/d table[i, q] M[p][q].
std::tuple<at::Tensor, at::Tensor> values_bwd(const at::Tensor& g, const at::Tensor& x, const at::Tensor& values,
                                              const at::Tensor& lo, const at::Tensor& hi, int m) {
  const SplineArgs s = values_args(x, values, lo, hi, m);
  check_grad(g, x);
  at::Tensor gx = at::empty_like(x);
  std::vector<double> sums(s.v.C * s.S * m);
  const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
  if (m == 2) spline_bwd_m<2>(s, xp, gp, gx.data_ptr<float>(), sums.data());
  if (m == 4) spline_bwd_m<4>(s, xp, gp, gx.data_ptr<float>(), sums.data());
  const int64_t K = s.S + m - 1;
  at::Tensor gv = at::empty({s.v.C, K}, values.options());
  float* gvp = gv.data_ptr<float>();
  std::vector<double> acc(K);
  for (int64_t c = 0; c < s.v.C; ++c) {
    const double* row = sums.data() + c * s.S * m;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < s.S; ++i) {
      if (m == 2) {
        acc[i] += row[2 * i] - row[2 * i + 1];
        acc[i + 1] += row[2 * i + 1];
        continue;
      }
      for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 4; ++q) acc[i + p] += row[4 * i + q] * cubic_weight(p, q);
    }
    for (int64_t k = 0; k < K; ++k) gvp[c * K + k] = static_cast<float>(acc[k]);
  }
  return {gx, gv};
}

at::Tensor linear_spline_fwd(const at::Tensor& x, const at::Tensor& v, const at::Tensor& lo, const at::Tensor& hi) {
  return values_fwd(x, v, lo, hi, 2);
}

std::tuple<at::Tensor, at::Tensor> linear_spline_bwd(const at::Tensor& g, const at::Tensor& x, const at::Tensor& v,
                                                     const at::Tensor& lo, const at::Tensor& hi) {
  return values_bwd(g, x, v, lo, hi, 2);
}

at::Tensor cubic_spline_fwd(const at::Tensor& x, const at::Tensor& v, const at::Tensor& lo, const at::Tensor& hi) {
  return values_fwd(x, v, lo, hi, 4);
}

std::tuple<at::Tensor, at::Tensor> cubic_spline_bwd(const at::Tensor& g, const at::Tensor& x, const at::Tensor& v,
                                                    const at::Tensor& lo, const at::Tensor& hi) {
  return values_bwd(g, x, v, lo, hi, 4);
}

}  // namespace
}  // namespace actlab

TORCH_LIBRARY_FRAGMENT(actlab_learnable, m) {
  m.def("linear_spline_fwd(Tensor x, Tensor values, Tensor lo, Tensor hi) -> Tensor");
  m.def("linear_spline_bwd(Tensor g, Tensor x, Tensor values, Tensor lo, Tensor hi) -> (Tensor, Tensor)");
  m.def("cubic_spline_fwd(Tensor x, Tensor values, Tensor lo, Tensor hi) -> Tensor");
  m.def("cubic_spline_bwd(Tensor g, Tensor x, Tensor values, Tensor lo, Tensor hi) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(actlab_learnable, CPU, m) {
  m.impl("linear_spline_fwd", &actlab::linear_spline_fwd);
  m.impl("linear_spline_bwd", &actlab::linear_spline_bwd);
  m.impl("cubic_spline_fwd", &actlab::cubic_spline_fwd);
  m.impl("cubic_spline_bwd", &actlab::cubic_spline_bwd);
}
