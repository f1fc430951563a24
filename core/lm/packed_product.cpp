#include "lm/packed_product.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "util/runtime.h"

#ifdef MONOSCOPE_HAVE_DNNL
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace monoscope::core {

namespace {

// On unless the environment says MONOSCOPE_PACKED_PRODUCTS=0 (to compare against BLAS).
std::atomic<bool> g_enabled{!switchedOff("MONOSCOPE_PACKED_PRODUCTS")};
// BF16 products on for BF16 weights where the CPU has BF16 instructions, unless
// MONOSCOPE_BF16_PRODUCTS=0 (then such weights are widened to fp32 for each product).
std::atomic<bool> g_bf16_enabled{!switchedOff("MONOSCOPE_BF16_PRODUCTS")};

// A product is cut into tiles of at most kTileRows x kTileCols outputs, each computed by one
// thread (the tiles side by side): a tile's rows and results stay in cache, a 256-token prompt
// still gives every thread work, and since the cut does not depend on the thread count, neither
// does any result.
[[maybe_unused]] constexpr std::int64_t kTileRows = 256;
[[maybe_unused]] constexpr std::int64_t kTileCols = 512;

// BF16 weights on an accelerator, float activations, no autograd: the product runs in BF16.
bool deviceBf16Applies(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w) {
  if (x.device().is_cpu() || !bf16ProductsOn(x.device())) return false;
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kBFloat16) return false;
  return !((x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad())) && c10::GradMode::is_enabled());
}

at::Tensor blasProduct(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w,
                       Activation activation = Activation::None) {
  // A weight kept in half precision (Transformer's WeightDtype::Stored) is widened for the
  // product, except on an accelerator, which multiplies BF16 weights in BF16.
  at::Tensor y;
  if (deviceBf16Applies(b, x, w)) {
    y = halfPrecisionProduct(b, x, w);
  } else {
    const at::Tensor wx = w.scalar_type() == x.scalar_type() ? w : w.to(x.scalar_type());
    y = b.defined() ? at::addmm(b, x, wx) : at::mm(x, wx);
  }
  switch (activation) {
    case Activation::None: return y;
    case Activation::GeluTanh: return at::gelu(y, "tanh");
    case Activation::GeluErf: return at::gelu(y);
    case Activation::Relu: return at::relu(y);
  }
  return y;
}

bool packedApplies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!packedProductsEnabled()) return false;
  if (x.dim() != 2 || w.dim() != 2 || x.size(0) < PackedProduct::kMinRows || x.size(1) != w.size(0)) return false;
  if (!x.device().is_cpu() || !w.device().is_cpu()) return false;
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat) return false;
  if (b.defined() && (b.scalar_type() != at::kFloat || b.dim() != 1 || b.size(0) != w.size(1) || !b.device().is_cpu())) {
    return false;
  }
  const bool grad = x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad());
  return !(grad && c10::GradMode::is_enabled());
}

#ifdef MONOSCOPE_HAVE_DNNL
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

const dnnl::engine& cpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Made for one thread: the blocks of a product run side by side, one thread each, so a result
// never depends on the thread count (for small shapes oneDNN would otherwise split the sum over
// K between threads, and a scan's one-thread lanes would round differently from a two-thread
// run).
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

dnnl::post_ops postOps(Activation activation) {
  dnnl::post_ops ops;
  if (activation == Activation::GeluTanh) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.0f, 0.0f);
  if (activation == Activation::GeluErf) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
  if (activation == Activation::Relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  return ops;
}

// One matmul primitive per shape, shared by every weight of that shape.
struct Primitive {
  dnnl::matmul matmul;
  dnnl::memory::desc weights;     // the layout the primitive reads its weights in
  dnnl::memory::desc scratchpad;  // working memory, given by each caller (threads run it at once)
};

// rows x N of the output (whose rows are ld apart, fp32) from rows x K of the input, both in
// `in` (f32, or bf16 for BF16 products). Weights with strides `ws` (K x N read in place), or
// without (ws empty: packed into the layout oneDNN picks, returned in `weights`).
std::shared_ptr<const Primitive> primitiveFor(dt in, std::int64_t rows, std::int64_t K, std::int64_t N, std::int64_t ld,
                                              const std::vector<std::int64_t>& ws, bool bias, Activation activation) {
  static std::mutex mutex;
  static std::map<std::tuple<dt, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::vector<std::int64_t>, bool, Activation>,
                  std::shared_ptr<const Primitive>>
      cache;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(in, rows, K, N, ld, ws, bias, activation);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() > 256) cache.clear();  // many shapes (prompts of every length): start over
  const dnnl::memory::desc src({rows, K}, in, tag::ab);
  const dnnl::memory::desc weights = ws.empty() ? dnnl::memory::desc({K, N}, in, tag::any) : dnnl::memory::desc({K, N}, in, ws);
  const dnnl::memory::desc dst({rows, N}, dt::f32, {ld, 1});
  const dnnl::matmul::desc desc = bias ? dnnl::matmul::desc(src, weights, dnnl::memory::desc({1, N}, dt::f32, tag::ab), dst)
                                       : dnnl::matmul::desc(src, weights, dst);
  dnnl::primitive_attr attr;
  attr.set_post_ops(postOps(activation));
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  OneThread one_thread;
  const dnnl::matmul::primitive_desc pd(desc, attr, cpuEngine());
  auto made = std::make_shared<const Primitive>(Primitive{dnnl::matmul(pd), pd.weights_desc(), pd.scratchpad_desc()});
  cache.emplace(key, made);
  return made;
}

// w [K, N] (any strides) reordered into `layout`.
at::Tensor pack(const at::Tensor& w, const dnnl::memory::desc& layout) {
  const dnnl::engine& engine = cpuEngine();
  at::Tensor out = at::empty({static_cast<std::int64_t>(layout.get_size() / sizeof(float))}, w.options());
  dnnl::memory from(dnnl::memory::desc({w.size(0), w.size(1)}, dt::f32, {w.stride(0), w.stride(1)}), engine,
                    w.data_ptr());
  dnnl::memory to(layout, engine, out.data_ptr());
  dnnl::stream stream(engine);
  dnnl::reorder(from, to).execute(stream, from, to);
  stream.wait();
  return out;
}

// BF16 tiles as wide as the fp32 ones: measured on Llama-3.1-8B's and Gemma-2-2B's shapes with
// 64 rows, 512 columns ran 10-20% faster than 256 (oneDNN 2.6 re-lays each tile's weights out
// for its kernel, and wider tiles spread that cost) and faster than 1,024 or 2,048.
constexpr std::int64_t kBf16TileCols = 512;

at::Tensor bf16Product(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w, Activation activation) {
  constexpr std::int64_t kTileCols = kBf16TileCols;
  const std::int64_t M = x.size(0), K = x.size(1), N = w.size(1);
  const at::Tensor xb = x.to(at::kBFloat16).contiguous();
  const at::Tensor bias = b.defined() ? b.to(at::kFloat).contiguous() : b;
  const std::int64_t ws0 = w.stride(0), ws1 = w.stride(1);
  const std::int64_t row_tiles = (M + kTileRows - 1) / kTileRows, col_tiles = (N + kTileCols - 1) / kTileCols;
  at::Tensor out = at::empty({M, N}, x.options().dtype(at::kFloat));
  const dnnl::engine& engine = cpuEngine();
  const auto* wdata = static_cast<const std::uint16_t*>(w.data_ptr());
  const auto* xdata = static_cast<const std::uint16_t*>(xb.data_ptr());
  // Primitives are made before the threads start (their cache is locked).
  // A BF16 tile reads the weight's bf16 K x cols block in place (no packed copy, which would
  // hold the model twice) and sums in fp32.
  std::map<std::pair<std::int64_t, std::int64_t>, std::shared_ptr<const Primitive>> prims;
  try {
    for (const std::int64_t rows : {std::min(M, kTileRows), M % kTileRows})
      for (const std::int64_t cols : {std::min(N, kTileCols), N % kTileCols})
        if (rows > 0 && cols > 0 && !prims.count({rows, cols}))
          prims[{rows, cols}] = primitiveFor(dt::bf16, rows, K, cols, N, {ws0, ws1}, bias.defined(), activation);
  } catch (const dnnl::error&) {
    return blasProduct(b, x, w, activation);  // a layout oneDNN has no BF16 kernel for: widen instead
  }
  at::parallel_for(0, row_tiles * col_tiles, 1, [&](std::int64_t t0, std::int64_t t1) {
    dnnl::stream stream(engine);
    thread_local std::vector<std::uint8_t> scratch;  // kept between products: no fresh pages each time
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t c = t / row_tiles, r = t % row_tiles;
      const std::int64_t r0 = r * kTileRows, rows = std::min(M, r0 + kTileRows) - r0;
      const std::int64_t c0 = c * kTileCols, cols = std::min(N, c0 + kTileCols) - c0;
      const Primitive& p = *prims.at({rows, cols});
      std::unordered_map<int, dnnl::memory> args{
          {DNNL_ARG_SRC, dnnl::memory({{rows, K}, dt::bf16, tag::ab}, engine, const_cast<std::uint16_t*>(xdata + r0 * K))},
          {DNNL_ARG_WEIGHTS, dnnl::memory({{K, cols}, dt::bf16, {ws0, ws1}}, engine, const_cast<std::uint16_t*>(wdata + c0 * ws1))},
          {DNNL_ARG_DST, dnnl::memory({{rows, cols}, dt::f32, {N, 1}}, engine, out.data_ptr<float>() + r0 * N + c0)}};
      if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, cols}, dt::f32, tag::ab}, engine, bias.data_ptr<float>() + c0));
      scratch.resize(std::max<std::size_t>(scratch.size(), p.scratchpad.get_size()));
      args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(p.scratchpad, engine, scratch.data()));
      p.matmul.execute(stream, args);
    }
    stream.wait();
  });
  return out;
}
#endif

// BF16 weights multiplied in BF16: float activations, no autograd, the CPU's BF16 instructions.
[[maybe_unused]] bool bf16Applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!bf16ProductsEnabled()) return false;
  if (x.dim() != 2 || w.dim() != 2 || x.size(1) != w.size(0) || x.size(0) == 0 || w.size(1) == 0) return false;
  if (!x.device().is_cpu() || !w.device().is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kBFloat16)
    return false;
  if (b.defined() && (b.dim() != 1 || b.size(0) != w.size(1) || !b.device().is_cpu())) return false;
  const bool grad = x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad());
  return !(grad && c10::GradMode::is_enabled());
}

}  // namespace

bool packedProductsAvailable() {
#ifdef MONOSCOPE_HAVE_DNNL
  return true;
#else
  return false;
#endif
}

bool setPackedProducts(bool on) { return g_enabled.exchange(on); }

bool packedProductsEnabled() { return g_enabled.load() && packedProductsAvailable(); }

bool bf16ProductsAvailable() {
#ifdef MONOSCOPE_HAVE_DNNL
  static const bool has = [] {
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return has;
#else
  return false;
#endif
}

bool setBf16Products(bool on) { return g_bf16_enabled.exchange(on); }

bool bf16ProductsEnabled() { return g_bf16_enabled.load() && bf16ProductsAvailable(); }

bool bf16ProductsOn(const c10::Device& device) { return device.is_cpu() ? bf16ProductsEnabled() : g_bf16_enabled.load(); }

at::Tensor halfPrecisionProduct(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w) {
  const at::ScalarType h = w.scalar_type();
  const at::Tensor xh = x.to(h);
  return (b.defined() ? at::addmm(b.to(h), xh, w) : at::mm(xh, w)).to(x.scalar_type());
}

namespace {
// Packed copies of all weights together stay under this size; past it, weights are multiplied
// by BLAS in place (a large model is not held twice in memory).
[[maybe_unused]] constexpr std::int64_t kPackedBudget = std::int64_t{1} << 30;
std::atomic<std::int64_t> g_packed_bytes{0};
}  // namespace

struct PackedProduct::State {
  std::mutex mutex;
  // The weight the packed copies were made from.
  const void* data = nullptr;
  std::uint32_t version = 0;
  std::vector<std::int64_t> sizes, strides;
#ifdef MONOSCOPE_HAVE_DNNL
  // Each column block of the weight in each layout asked for: (first column, layout, copy).
  std::vector<std::tuple<std::int64_t, dnnl::memory::desc, at::Tensor>> packed;
#endif
  std::int64_t bytes = 0;  // of the packed copies, counted in g_packed_bytes

  void drop(std::size_t i) {
#ifdef MONOSCOPE_HAVE_DNNL
    const std::int64_t n = static_cast<std::int64_t>(std::get<2>(packed[i]).nbytes());
    bytes -= n;
    g_packed_bytes -= n;
    packed.erase(packed.begin() + static_cast<std::ptrdiff_t>(i));
#else
    (void)i;
#endif
  }
  ~State() { g_packed_bytes -= bytes; }
};

PackedProduct::PackedProduct() : state_(std::make_shared<State>()) {}

PackedProduct::PackedProduct(const PackedProduct&) : state_(std::make_shared<State>()) {}

PackedProduct& PackedProduct::operator=(const PackedProduct& other) {
  if (this != &other) state_ = std::make_shared<State>();
  return *this;
}

at::Tensor PackedProduct::addmm(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w,
                                Activation activation) const {
#ifdef MONOSCOPE_HAVE_DNNL
  if (bf16Applies(x, w, b)) return bf16Product(b, x, w, activation);
#endif
  // (a moved-from product has no state)
  if (!state_ || !packedApplies(x, w, b)) return blasProduct(b, x, w, activation);
#ifdef MONOSCOPE_HAVE_DNNL
  const std::int64_t M = x.size(0), K = x.size(1), N = w.size(1);
  const at::Tensor xc = x.contiguous();
  const at::Tensor bias = b.defined() ? b.contiguous() : b;
  const std::int64_t row_tiles = (M + kTileRows - 1) / kTileRows, col_tiles = (N + kTileCols - 1) / kTileCols;
  // A primitive for each tile shape (the last row and column tiles may be smaller) and each
  // column block of the weight in the layout that primitive reads.
  struct Plan {
    std::int64_t rows, cols;
    std::shared_ptr<const Primitive> primitive;
    std::vector<at::Tensor> weights;  // per column tile of this width (others undefined)
  };
  std::vector<Plan> plans;
  {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    // Inference tensors carry no version counter (and cannot be changed outside inference mode).
    const std::uint32_t version = w.is_inference() ? 0 : static_cast<std::uint32_t>(w._version());
    if (s.data != w.data_ptr() || s.version != version || s.sizes != w.sizes().vec() || s.strides != w.strides().vec()) {
      while (!s.packed.empty()) s.drop(s.packed.size() - 1);
      s.data = w.data_ptr();
      s.version = version;
      s.sizes = w.sizes().vec();
      s.strides = w.strides().vec();
    }
    bool over_budget = false;
    for (const std::int64_t rows : {std::min(M, kTileRows), M % kTileRows}) {
      for (const std::int64_t cols : {std::min(N, kTileCols), N % kTileCols}) {
        if (rows == 0 || cols == 0 || over_budget) continue;
        bool seen = false;
        for (const Plan& p : plans) seen |= p.rows == rows && p.cols == cols;
        if (seen) continue;
        Plan plan{rows, cols, primitiveFor(dt::f32, rows, K, cols, N, {}, b.defined(), activation), std::vector<at::Tensor>(static_cast<std::size_t>(col_tiles))};
        for (std::int64_t c = 0; c < col_tiles && !over_budget; ++c) {
          const std::int64_t c0 = c * kTileCols;
          if (std::min(N, c0 + kTileCols) - c0 != cols) continue;
          at::Tensor packed;
          for (const auto& [first, layout, t] : s.packed) {
            if (first == c0 && layout == plan.primitive->weights) packed = t;
          }
          if (!packed.defined()) {
            if (s.packed.size() >= static_cast<std::size_t>(4 * col_tiles)) s.drop(0);
            const auto n = static_cast<std::int64_t>(plan.primitive->weights.get_size());
            if (g_packed_bytes + n > kPackedBudget) {
              over_budget = true;
              break;
            }
            packed = pack(w.slice(1, c0, c0 + cols), plan.primitive->weights);
            s.packed.emplace_back(c0, plan.primitive->weights, packed);
            s.bytes += n;
            g_packed_bytes += n;
          }
          plan.weights[static_cast<std::size_t>(c)] = std::move(packed);
        }
        plans.push_back(std::move(plan));
      }
    }
    if (over_budget) plans.clear();
  }
  if (plans.empty()) return blasProduct(b, x, w, activation);  // over the budget for packed copies
  at::Tensor out = at::empty({M, N}, xc.options());
  const dnnl::engine& engine = cpuEngine();
  // Tiles in column-major order, so a thread's consecutive tiles share a block of the weight.
  at::parallel_for(0, row_tiles * col_tiles, 1, [&](std::int64_t t0, std::int64_t t1) {
    dnnl::stream stream(engine);
    std::vector<std::uint8_t> scratch;
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t c = t / row_tiles, r = t % row_tiles;
      const std::int64_t r0 = r * kTileRows, rows = std::min(M, r0 + kTileRows) - r0;
      const std::int64_t c0 = c * kTileCols, cols = std::min(N, c0 + kTileCols) - c0;
      const Plan* plan = nullptr;
      for (const Plan& p : plans)
        if (p.rows == rows && p.cols == cols) plan = &p;
      std::unordered_map<int, dnnl::memory> args{
          {DNNL_ARG_SRC, dnnl::memory({{rows, K}, dt::f32, tag::ab}, engine, xc.data_ptr<float>() + r0 * K)},
          {DNNL_ARG_WEIGHTS, dnnl::memory(plan->primitive->weights, engine, plan->weights[static_cast<std::size_t>(c)].data_ptr())},
          {DNNL_ARG_DST, dnnl::memory({{rows, cols}, dt::f32, {N, 1}}, engine, out.data_ptr<float>() + r0 * N + c0)}};
      if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, cols}, dt::f32, tag::ab}, engine, bias.data_ptr<float>() + c0));
      scratch.resize(std::max<std::size_t>(scratch.size(), plan->primitive->scratchpad.get_size()));
      args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(plan->primitive->scratchpad, engine, scratch.data()));
      plan->primitive->matmul.execute(stream, args);
    }
    stream.wait();
  });
  return out;
#else
  return blasProduct(b, x, w, activation);
#endif
}

at::Tensor PackedProduct::linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                 Activation activation) const {
  std::vector<std::int64_t> shape = x.sizes().vec();
  shape.back() = w.size(1);
  return addmm(b, x.reshape({-1, x.size(-1)}), w, activation).view(shape);
}

}  // namespace monoscope::core
