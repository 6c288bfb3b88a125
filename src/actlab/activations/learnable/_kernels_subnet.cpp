// subnet with one hidden layer: y = sum_h w_out[h] act(w_in[h] x + b_in[h]) + b_out,
// act tanh or relu, H <= kMaxHidden hidden units (see subnet.py; the reference is the
// broadcast PyTorch path of Subnet.forward, and _autograd_subnet's reference gradients).
//
// Elements go across the vector lanes and the hidden units are the loop: a block of
// U vectors goes through every unit with the unit's weights as scalars, so nothing
// H-wide is ever stored. Backward recomputes the pre-activations from x; per unit it
// sums g act(pre) (w_out), gpre (b_in) and gpre x (w_in), gpre = g w_out act'(pre),
// first over the block in registers, then into float vectors for one run and doubles
// per item (see _kernels.h), so the result does not depend on the thread count.
// The derivatives are the reference's: tanh' = 1 - tanh^2 from the value, and relu
// passes the gradient unless relu(pre) <= 0 (as threshold_backward: NaN passes).
// x = +-inf: where the sum meets inf - inf or 0 * inf (a NaN output at an infinite
// input), the output is the limit, computed per channel from the weights (Net::lim).
#include "_kernels.h"

namespace actlab {
namespace {

constexpr int kMaxHidden = 64;
enum Act { kTanh = 0, kRelu = 1 };
constexpr int kBlock = 4;  // vectors per block: independent chains; per-unit sums stored once a block

#define EACH for (int u = 0; u < U; ++u)

// max(z, lo) and clamp() in min/max instructions instead of compare-and-selects; the
// input goes second, the operand these instructions return when one is NaN.
ACTLAB_INLINE vf max_nan(vf z, float lo) {
#if defined(__AVX512F__)
  return (vf)_mm512_max_ps(_mm512_set1_ps(lo), (__m512)z);
#elif defined(__AVX2__)
  return (vf)_mm256_max_ps(_mm256_set1_ps(lo), (__m256)z);
#else
  return vselect(z < splat(lo), splat(lo), z);
#endif
}

ACTLAB_INLINE vf clamp_nan(vf z, float lo, float hi) {
#if defined(__AVX512F__)
  return max_nan((vf)_mm512_min_ps(_mm512_set1_ps(hi), (__m512)z), lo);
#elif defined(__AVX2__)
  return max_nan((vf)_mm256_min_ps(_mm256_set1_ps(hi), (__m256)z), lo);
#else
  return clamp(z, lo, hi);
#endif
}

// tanh by the odd rational minimax approximation of degrees 13/6 that Eigen, XLA and
// MLAS use: within 4e-7 of tanh, odd, so small arguments keep their relative accuracy.
// It passes +-1 near +-7.905 (Eigen's clamp) and is 1 + 2e-7 at 9 (MLAS's clamp);
// clamping the argument at 9 and the value at 1 makes it exactly +-1 from there on,
// as float32 tanh is, so tanh' = 1 - tanh^2 is 0 far out as in the reference (an
// infinite x then gives NaN parameter gradients, 0 * inf, as there). Clamps keep NaN.
ACTLAB_INLINE vf vtanh(vf z) {
  z = clamp_nan(z, -9.f, 9.f);
  const vf z2 = z * z;
  vf p = splat(-2.76076847742355e-16f);
  p = p * z2 + splat(2.00018790482477e-13f);
  p = p * z2 + splat(-8.60467152213735e-11f);
  p = p * z2 + splat(5.12229709037114e-08f);
  p = p * z2 + splat(1.48572235717979e-05f);
  p = p * z2 + splat(6.37261928875436e-04f);
  p = p * z2 + splat(4.89352455891786e-03f);
  vf q = splat(1.19825839466702e-06f);
  q = q * z2 + splat(1.18534705686654e-04f);
  q = q * z2 + splat(2.26843463243900e-03f);
  q = q * z2 + splat(4.89352518554385e-03f);
  return clamp_nan(z * p / q, -1.f, 1.f);
}

template <int A>
ACTLAB_INLINE vf act(vf pre) {
  if constexpr (A == kTanh) return vtanh(pre);
  return max_nan(pre, 0.f);  // relu
}

struct Net {
  int H;
  float wi[kMaxHidden], bi[kMaxHidden], wo[kMaxHidden], bo;
  float lim[2];  // the limits at -inf and +inf

  // lim[side]: each unit's pre-activation w x + b goes to +-inf (or stays b where w = 0);
  // tanh then gives +-1, relu passes the line w x + b on or gives 0. Summed: +-inf where
  // the output's slope is not 0, else the constant (as Subnet.limits, for any depth).
  void set_limits(int act_kind) {
    for (int side = 0; side < 2; ++side) {
      const double d = side == 0 ? -1.0 : 1.0;
      double slope = 0.0, value = bo;
      for (int h = 0; h < H; ++h) {
        const double a = d * wi[h], b = bi[h], o = wo[h];
        if (act_kind == kTanh) value += o * (a > 0 ? 1.0 : a < 0 ? -1.0 : std::tanh(b));
        else if (a > 0) slope += o * a, value += o * b;
        else if (a == 0) value += o * std::max(b, 0.0);
      }
      lim[side] = static_cast<float>(slope != 0.0 ? std::copysign(INFINITY, slope) : value);
    }
  }

  template <int A, int U>
  ACTLAB_INLINE void forward(const vf* x, vf* y) const {
    vf acc[U];
    EACH acc[u] = vf{};
    for (int h = 0; h < H; ++h) EACH acc[u] += wo[h] * act<A>(x[u] * wi[h] + bi[h]);
    vi nan{};
    EACH {
      y[u] = acc[u] + bo;
      nan |= y[u] != y[u];
    }
    if (any(nan)) EACH {  // rare: a NaN input (kept), or an infinite one (its limit)
      const vi inf = (y[u] != y[u]) & (vabs(x[u]) == splat(INFINITY));
      y[u] = vselect(inf, vselect(x[u] > splat(0.f), splat(lim[1]), splat(lim[0])), y[u]);
    }
  }

  // Adds to S[h] (w_out), S[H + h] (b_in), S[2H + h] (w_in) and S[3H] (b_out); writes grad_input.
  template <int A, int U>
  ACTLAB_INLINE void backward(const vf* x, const vf* g, vf* gx, vf* S) const {
    vf acc[U];
    EACH acc[u] = vf{};
    for (int h = 0; h < H; ++h) {
      vf s_a = vf{}, s_p = vf{}, s_px = vf{};
      EACH {
        const vf a = act<A>(x[u] * wi[h] + bi[h]), gh = g[u] * wo[h];
        const vf gp = A == kTanh ? gh * (splat(1.f) - a * a) : vselect(a <= splat(0.f), splat(0.f), gh);
        acc[u] += gp * wi[h];
        s_a += g[u] * a;
        s_p += gp;
        s_px += gp * x[u];
      }
      S[h] += s_a;
      S[H + h] += s_p;
      S[2 * H + h] += s_px;
    }
    EACH {
      gx[u] = acc[u];
      S[3 * H] += g[u];
    }
  }
};

struct SubnetArgs {
  View v;
  int H;
  at::Tensor wi, bi, wo, bo;
  int act;

  Net channel(int64_t c) const {  // data_ptr() is a call with checks: once per tensor
    Net k;
    k.H = H;
    std::memcpy(k.wi, wi.data_ptr<float>() + c * H, 4 * H);
    std::memcpy(k.bi, bi.data_ptr<float>() + c * H, 4 * H);
    std::memcpy(k.wo, wo.data_ptr<float>() + c * H, 4 * H);
    k.bo = bo.data_ptr<float>()[c];
    k.set_limits(act);
    return k;
  }
};

SubnetArgs subnet_args(const at::Tensor& x, const at::Tensor& wi, const at::Tensor& bi, const at::Tensor& wo,
                       const at::Tensor& bo, int64_t act_kind) {
  check_float_cpu(x, "x");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  for (const at::Tensor* t : {&wi, &bi, &wo}) {
    check_float_cpu(*t, "subnet weights");
    TORCH_CHECK(t->dim() == 2 && t->sizes() == wi.sizes(), "w_in, b_in and w_out must be (C, H), got ",
                t->sizes());
  }
  check_float_cpu(bo, "b_out");
  TORCH_CHECK(bo.dim() == 1 && bo.size(0) == wi.size(0), "b_out must be (C,), got ", bo.sizes());
  TORCH_CHECK(wi.size(1) >= 1 && wi.size(1) <= kMaxHidden, "subnet kernels hold 1 to ", kMaxHidden,
              " hidden units, got ", wi.size(1));
  TORCH_CHECK(act_kind == kTanh || act_kind == kRelu, "act must be 0 (tanh) or 1 (relu), got ", act_kind);
  return {view_of(x, wi.size(0)), static_cast<int>(wi.size(1)), wi.contiguous(), bi.contiguous(),
          wo.contiguous(), bo.contiguous(), static_cast<int>(act_kind)};
}

// Runs are walked in blocks of kBlock vectors up to here, then one vector at a time, so
// that a short run (a dense layer's channel) pads at most W - 1 lanes.
inline int64_t full_blocks(int64_t n) { return n / (kBlock * W) * (kBlock * W); }

template <int A>
void forward_all(const SubnetArgs& s, const float* xp, float* yp) {
  for_items(s.v, [&](const Item& it) {
    const Net k = s.channel(it.c);
    visit(s.v, it, xp, nullptr, yp, [&](const float* xs, const float*, float* ys, int64_t n) {
      const int64_t m = full_blocks(n);
      run<kBlock>(xs, nullptr, ys, m, [&](const vf* xv, const vf*, vf* yv, int64_t) {
        k.forward<A, kBlock>(xv, yv);
      });
      run<1>(xs + m, nullptr, ys + m, n - m, [&](const vf* xv, const vf*, vf* yv, int64_t) {
        k.forward<A, 1>(xv, yv);
      });
    });
  });
}

// Per-item sums of the 3H + 1 parameter gradients: float vectors within one run, then
// double vectors (a dense layer makes an item per channel, so this is kept cheap).
typedef double vd __attribute__((vector_size(8 * W)));
struct NetSums {
  int n;
  vf v[3 * kMaxHidden + 1];
  vd d[3 * kMaxHidden + 1];
  explicit NetSums(int count) : n(count) {
    for (int k = 0; k < n; ++k) v[k] = vf{}, d[k] = vd{};
  }
  void flush() {
    for (int k = 0; k < n; ++k) {
      d[k] += __builtin_convertvector(v[k], vd);
      v[k] = vf{};
    }
  }
  void total(double* out) const {
    for (int k = 0; k < n; ++k) {
      double s = 0.0;
      for (int j = 0; j < W; ++j) s += d[k][j];
      out[k] = s;
    }
  }
};

template <int A>
void backward_all(const SubnetArgs& s, const float* xp, const float* gp, float* gxp, double* sums) {
  const int nacc = 3 * s.H + 1;
  reduce_items(s.v, nacc, sums, [&](const Item& it, double* row) {
    const Net k = s.channel(it.c);
    NetSums acc(nacc);
    visit(s.v, it, xp, gp, gxp, [&](const float* xs, const float* gs, float* ys, int64_t n) {
      const int64_t m = full_blocks(n);
      run<kBlock>(xs, gs, ys, m, [&](const vf* xv, const vf* gv, vf* yv, int64_t) {
        k.backward<A, kBlock>(xv, gv, yv, acc.v);
      });
      run<1>(xs + m, gs + m, ys + m, n - m, [&](const vf* xv, const vf* gv, vf* yv, int64_t) {
        k.backward<A, 1>(xv, gv, yv, acc.v);
      });
      acc.flush();
    });
    acc.total(row);
  });
}

at::Tensor subnet_fwd(const at::Tensor& x, const at::Tensor& wi, const at::Tensor& bi, const at::Tensor& wo,
                      const at::Tensor& bo, int64_t act_kind) {
  const SubnetArgs s = subnet_args(x, wi, bi, wo, bo, act_kind);
  at::Tensor y = at::empty_like(x);
  if (act_kind == kTanh)
    forward_all<kTanh>(s, x.data_ptr<float>(), y.data_ptr<float>());
  else
    forward_all<kRelu>(s, x.data_ptr<float>(), y.data_ptr<float>());
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> subnet_bwd(
    const at::Tensor& g, const at::Tensor& x, const at::Tensor& wi, const at::Tensor& bi, const at::Tensor& wo,
    const at::Tensor& bo, int64_t act_kind) {
  const SubnetArgs s = subnet_args(x, wi, bi, wo, bo, act_kind);
  check_grad(g, x);
  at::Tensor gx = at::empty_like(x);
  const int H = s.H, nacc = 3 * H + 1;
  std::vector<double> sums(s.v.C * nacc);
  if (act_kind == kTanh)
    backward_all<kTanh>(s, x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), sums.data());
  else
    backward_all<kRelu>(s, x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), sums.data());
  at::Tensor gwi = at::empty_like(s.wi), gbi = at::empty_like(s.bi), gwo = at::empty_like(s.wo);
  at::Tensor gbo = at::empty_like(s.bo);
  float *pwo = gwo.data_ptr<float>(), *pbi = gbi.data_ptr<float>(), *pwi = gwi.data_ptr<float>();
  for (int64_t c = 0; c < s.v.C; ++c) {
    const double* row = sums.data() + c * nacc;
    for (int h = 0; h < H; ++h) {
      pwo[c * H + h] = static_cast<float>(row[h]);
      pbi[c * H + h] = static_cast<float>(row[H + h]);
      pwi[c * H + h] = static_cast<float>(row[2 * H + h]);
    }
    gbo.data_ptr<float>()[c] = static_cast<float>(row[3 * H]);
  }
  return {gx, gwi, gbi, gwo, gbo};
}

}  // namespace
}  // namespace actlab

TORCH_LIBRARY_FRAGMENT(actlab_learnable, m) {
  m.def("subnet_fwd(Tensor x, Tensor w_in, Tensor b_in, Tensor w_out, Tensor b_out, int act) -> Tensor");
  m.def("subnet_bwd(Tensor g, Tensor x, Tensor w_in, Tensor b_in, Tensor w_out, Tensor b_out, int act)"
        " -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(actlab_learnable, CPU, m) {
  m.impl("subnet_fwd", &actlab::subnet_fwd);
  m.impl("subnet_bwd", &actlab::subnet_bwd);
}
