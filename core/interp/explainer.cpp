#include "interp/explainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace monoscope::core {

AutoExplanation explainByTokenLift(const std::unordered_map<std::int32_t, double>& mass,
                                   const std::vector<std::int64_t>& corpus_counts, std::int64_t corpus_total,
                                   const std::function<std::string(std::int32_t)>& token_text) {
  AutoExplanation out;
  double total = 0;
  for (const auto& [id, m] : mass) total += m;
  if (total <= 0 || corpus_total <= 0) return out;
  struct Cand {
    std::int32_t id;
    double share, lift, rank;
  };
  std::vector<Cand> c;
  for (const auto& [id, m] : mass) {
    const double freq = (id >= 0 && static_cast<std::size_t>(id) < corpus_counts.size() ? corpus_counts[static_cast<std::size_t>(id)] : 0) + 1.0;
    const double share = m / total;
    const double lift = share / (freq / static_cast<double>(corpus_total));
    c.push_back({id, share, lift, share * std::log(std::max(lift, 1.0 + 1e-9))});
  }
  std::sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.id < b.id; });
  std::vector<Cand> chosen;
  for (const auto& x : c) {
    if (chosen.size() >= 3) break;
    if (x.share >= 0.05 && x.lift > 1.0) chosen.push_back(x);
  }
  if (chosen.empty() && !c.empty()) chosen.push_back(c.front());
  std::string quoted;
  double share = 0, lift_num = 0;
  for (const auto& x : chosen) {
    std::string t = token_text(x.id);
    for (auto& ch : t)
      if (ch == '"' || ch == '\n' || ch == '\t') ch = ch == '"' ? '\'' : ' ';
    quoted += (quoted.empty() ? "" : ", ") + ("\"" + t + "\"");
    share += x.share;
    lift_num += x.lift * x.share;
  }
  char tail[96];
  std::snprintf(tail, sizeof tail, " (%.0f%% of activation, lift %.0fx)", 100.0 * share, share > 0 ? lift_num / share : 0.0);
  out.text = "Fires on " + quoted + tail;
  std::sort(c.begin(), c.end(), [](const Cand& a, const Cand& b) { return a.share != b.share ? a.share > b.share : a.id < b.id; });
  for (std::size_t i = 0; i < c.size() && i < 8; ++i) {
    std::string t = token_text(c[i].id);
    const auto b = t.find_first_not_of(" \t\n");
    if (b == std::string::npos) continue;
    out.top_tokens += (out.top_tokens.empty() ? "" : " ") + t.substr(b);
  }
  return out;
}

}  // namespace monoscope::core
