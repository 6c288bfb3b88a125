// spline (PiecewiseFn): the kernel core of _kernels_spline.h on a given table (C, S, m).
#include "_kernels_spline.h"

namespace actlab {
namespace {

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

}  // namespace
}  // namespace actlab

TORCH_LIBRARY_FRAGMENT(actlab_learnable, m) {
  m.def("spline_fwd(Tensor x, Tensor table, Tensor inv_h, Tensor offset) -> Tensor");
  m.def("spline_bwd(Tensor g, Tensor x, Tensor table, Tensor inv_h, Tensor offset) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(actlab_learnable, CPU, m) {
  m.impl("spline_fwd", &actlab::spline_fwd);
  m.impl("spline_bwd", &actlab::spline_bwd);
}
