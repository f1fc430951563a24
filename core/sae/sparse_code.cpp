// The sparse code of TopK training: each prefix group's candidates, and the squared error's
// gradients through (row, latent, value) triples, plain and with Matryoshka prefixes.
#include <ATen/ATen.h>

#include "sae/sae_trainer.h"

namespace monoscope::core {

std::pair<at::Tensor, at::Tensor> groupTopk(const at::Tensor& pre, const std::vector<std::int64_t>& prefixes,
                                            const std::vector<std::int64_t>& ks, std::int64_t k) {
  std::vector<SaeConfig::TopkGroup> groups;
  for (std::size_t g = 0; g < ks.size(); ++g)
    groups.push_back({g == 0 ? 0 : prefixes[g - 1], g < prefixes.size() ? prefixes[g] : pre.size(1), ks[g]});
  auto [values, latents] = groupedTopk(pre, groups, k);  // the inference's choice, so both agree
  return {latents, values};
}

SparseCodeGradients sparseCodeGradients(const at::Tensor& x, const at::Tensor& xc, const at::Tensor& W_dec,
                                        const at::Tensor& b_dec, const at::Tensor& W_encT, const at::Tensor& rows,
                                        const at::Tensor& latents, const at::Tensor& values) {
  const std::int64_t B = x.size(0), S = W_dec.size(0);
  // Where each row's triples start (a search, not a count: no device-to-host read on a GPU).
  const at::Tensor offsets = at::searchsorted(rows, at::arange(B, rows.options()));
  auto bag = at::embedding_bag(W_dec, latents, offsets, false, /*sum*/ 0, false, values, false);
  SparseCodeGradients g;
  g.error = std::get<0>(bag).add_(b_dec).sub_(x);  // [B, d]
  const at::Tensor g_xhat = g.error * (2.0 / static_cast<double>(B));
  g.g_values = at::_embedding_bag_per_sample_weights_backward(g_xhat, W_dec, latents, offsets, std::get<1>(bag),
                                                              /*sum*/ 0, -1) *
               (values > 0);
  const at::Tensor where = at::stack({latents, rows});  // (latent, row): the code as [S, B]
  g.gW_dec = at::mm(at::sparse_coo_tensor(where, values, {S, B}), g_xhat);
  g.gW_encT = at::mm(at::sparse_coo_tensor(where, g.g_values, {S, B}), xc);
  g.gb_enc = at::zeros({S}, g.g_values.options()).index_add_(0, latents, g.g_values);
  g.gb_dec = g_xhat.sum(0) - at::mv(W_encT.t(), g.gb_enc);
  return g;
}

SparseCodeGradients matryoshkaCodeGradients(const at::Tensor& x, const at::Tensor& xc, const at::Tensor& W_dec,
                                            const at::Tensor& b_dec, const at::Tensor& W_encT, const at::Tensor& rows,
                                            const at::Tensor& latents, const at::Tensor& values,
                                            const std::vector<std::int64_t>& prefixes, double& squared_error) {
  // Each restricted code is a subset of the triples, in the same row order, over the first m
  // rows of the weights; the gradients of a sum are the sums of the gradients, so each term goes
  // through sparseCodeGradients on those rows alone.
  SparseCodeGradients g = sparseCodeGradients(x, xc, W_dec, b_dec, W_encT, rows, latents, values);
  at::Tensor sq = g.error.pow(2).sum();
  for (const std::int64_t m : prefixes) {
    const at::Tensor in = latents < m;
    const SparseCodeGradients p =
        sparseCodeGradients(x, xc, W_dec.narrow(0, 0, m), b_dec, W_encT.narrow(0, 0, m), rows.masked_select(in),
                            latents.masked_select(in), values.masked_select(in));
    sq.add_(p.error.pow(2).sum());
    g.gW_dec.narrow(0, 0, m).add_(p.gW_dec);
    g.gW_encT.narrow(0, 0, m).add_(p.gW_encT);
    g.gb_enc.narrow(0, 0, m).add_(p.gb_enc);
    g.gb_dec.add_(p.gb_dec);
  }
  const double terms = static_cast<double>(prefixes.size() + 1);
  squared_error = sq.item<double>() / terms;
  for (at::Tensor* t : {&g.gW_dec, &g.gW_encT, &g.gb_enc, &g.gb_dec}) t->div_(terms);
  g.g_values = at::Tensor();
  return g;
}

}  // namespace monoscope::core
