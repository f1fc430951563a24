#pragma once
// Inference products b + x @ W through oneDNN's matmul with W packed once into the layout its
// kernels read (Debian's LibTorch links the same oneDNN). On this project's CPUs that runs the
// model's linear layers and the SAE encoder at 1.1-1.4x the speed of LibTorch's BLAS products,
// in fp32 (a different summation order, nothing rounded coarser).
//
// Used for float tensors on the CPU with at least kMinRows rows and no autograd, while the packed
// copies of all weights together stay under 1 GiB; training, token-by-token generation, the
// weights past that budget and everything else go to at::addmm unchanged, as does every call
// after setPackedProducts(false) or in a build without oneDNN.
#include <ATen/ATen.h>

#include <memory>

namespace monoscope::core {

// True when this build has oneDNN.
bool packedProductsAvailable();
// Turns the packed path on or off process-wide (on by default where available); returns the
// previous setting.
bool setPackedProducts(bool on);
bool packedProductsEnabled();
// BF16 weights (a model kept as stored, WeightDtype::Stored) multiply in BF16 where the CPU has
// BF16 instructions (avx512_bf16 or AMX): the activations are rounded to BF16 and the sums kept
// in fp32, as Hugging Face runs a BF16 model, at several times the speed of widening each weight
// to fp32 first. On by default where available; MONOSCOPE_BF16_PRODUCTS=0 or setBf16Products(false)
// widens instead (exact fp32 products of the stored weights).
bool bf16ProductsAvailable();
bool setBf16Products(bool on);  // returns the previous setting
bool bf16ProductsEnabled();
// On an accelerator (CUDA) BF16 weights multiply in BF16 too, under the same switch: the
// activations and the bias rounded to BF16, the device's BF16 product (fp32 accumulation), its
// BF16 result widened to fp32, as autocast to bfloat16 runs a model (the CPU's BF16 products keep
// the bias and the result in fp32). True where `device` takes that path.
bool bf16ProductsOn(const c10::Device& device);
// b + x @ w with x rounded to w's dtype (BF16 or F16) and the result widened back to x's dtype:
// the product of that path, on any device (on the CPU it is LibTorch's own, and slow).
at::Tensor halfPrecisionProduct(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w);

// An activation applied to the product's output in the same pass.
enum class Activation { None, GeluTanh, GeluErf, Relu };

// One weight's product. Keeps the packed copy of the last weight it multiplied, re-made when the
// weight's storage, shape or version changes (an optimiser step, a reload). A copy starts with
// no packed weight of its own. Safe to call from several threads.
class PackedProduct {
 public:
  static constexpr std::int64_t kMinRows = 64;
  PackedProduct();
  PackedProduct(const PackedProduct&);
  PackedProduct& operator=(const PackedProduct&);
  PackedProduct(PackedProduct&&) noexcept = default;
  PackedProduct& operator=(PackedProduct&&) noexcept = default;
  // b + x @ w for x [M, K], w [K, N] (any strides; a transposed view is fine), b [N] or undefined.
  at::Tensor addmm(const at::Tensor& b, const at::Tensor& x, const at::Tensor& w,
                   Activation activation = Activation::None) const;
  // The same for x [..., K]: the leading dimensions are kept.
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                    Activation activation = Activation::None) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace monoscope::core
