// TopK SAEs whose dictionary is split into groups, each keeping its own share of k (a Matryoshka
// SAE trained with train-sae --matryoshka-k): the dense, sparse and mapped encoders agree, the
// groups survive a save and load, and bad groups are refused naming the field.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QTemporaryDir>
#include <QtTest>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "sae/sae.h"
#include "sae_test_util.h"
#include "test_util.h"
#include "util/error.h"

using namespace monoscope::core;

class TestSaeGroups : public QObject {
  Q_OBJECT

  // The fixture's topk SAE (64 -> 128, k 8) split at 16 and 48 into shares 2, 2, 4, with the
  // first group's biases raised so that one top k would give it every place.
  static Sae grouped(const Sae& base) {
    SaeConfig cfg = base.config();
    cfg.group_ends = {16, 48};
    cfg.group_k = {2, 2, 4};
    at::Tensor b = base.b_enc().clone();
    b.narrow(0, 0, 16).add_(50.0);
    return Sae(cfg, base.W_enc(), b, base.W_dec(), base.b_dec(), at::Tensor());
  }

 private Q_SLOTS:
  void eachGroupKeepsItsShare() {
    c10::InferenceMode guard;
    auto base = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    const Sae g = grouped(*base);
    at::manual_seed(3);
    const at::Tensor x = at::randn({200, 64});
    const at::Tensor pre = g.preActivations(x), f = g.encode(x);
    at::Tensor want = at::zeros_like(pre);
    const std::int64_t begin[3] = {0, 16, 48}, end[3] = {16, 48, 128}, k[3] = {2, 2, 4};
    for (int i = 0; i < 3; ++i) {
      auto top = pre.narrow(1, begin[i], end[i] - begin[i]).topk(k[i], 1);
      want.narrow(1, begin[i], end[i] - begin[i]).scatter_(1, std::get<1>(top), std::get<0>(top).relu());
    }
    QVERIFY(at::equal(f, want));
    QVERIFY((f.narrow(1, 0, 16) > 0).sum(1).max().item<std::int64_t>() <= 2);
    QVERIFY((f.narrow(1, 48, 80) > 0).sum().item<std::int64_t>() > 0);  // one top k would leave it none
    testutil::expectSparseEncoding(g, x);
    const auto top = g.encodeTop(x, 8);
    QVERIFY(at::equal(f.gather(1, top.second), top.first));

    // Saved and loaded, copied and mapped (blocks of 48 across the group boundaries).
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    g.save(d, true);
    const auto copied = Sae::load(d, c10::Device(c10::kCPU));
    QCOMPARE(copied->config().group_ends, (std::vector<std::int64_t>{16, 48}));
    QCOMPARE(copied->config().group_k, (std::vector<std::int64_t>{2, 2, 4}));
    const at::Tensor fc = copied->encode(x);
    QVERIFY((fc.narrow(1, 0, 16) > 0).sum(1).max().item<std::int64_t>() <= 2);
    qputenv("MONOSCOPE_SAE_MAP_ABOVE", "0");
    qputenv("MONOSCOPE_SAE_BLOCK_FEATURES", "48");
    const auto mapped = Sae::load(d, c10::Device(c10::kCPU));
    qunsetenv("MONOSCOPE_SAE_MAP_ABOVE");
    QVERIFY(mapped->mapped());
    QVERIFY(testutil::maxAbsDiff(mapped->encode(x), fc) < 1e-4);
    QVERIFY(testutil::maxAbsDiff(mapped->maxOverRows(x), std::get<0>(fc.max(0))) < 1e-4);
    qunsetenv("MONOSCOPE_SAE_BLOCK_FEATURES");
  }

  // Caps summing to more than k: each group gives at most its cap, then the k largest of those.
  void groupCapsThenTheLargestK() {
    c10::InferenceMode guard;
    auto base = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    Sae g = grouped(*base);
    SaeConfig cfg = g.config();
    cfg.group_k = {2, 8, 8};
    const Sae capped(cfg, g.W_enc(), g.b_enc(), g.W_dec(), g.b_dec(), at::Tensor());
    at::manual_seed(4);
    const at::Tensor x = at::randn({200, 64});
    const at::Tensor pre = capped.preActivations(x), f = capped.encode(x);
    at::Tensor allowed = pre.clone();
    const at::Tensor head = pre.narrow(1, 0, 16);
    const at::Tensor second = std::get<0>(head.topk(2, 1)).narrow(1, 1, 1);  // each row's 2nd largest in the head
    allowed.narrow(1, 0, 16).masked_fill_(head < second, -1e9);
    auto top = allowed.topk(8, 1);
    const at::Tensor want = at::zeros_like(pre).scatter_(1, std::get<1>(top), std::get<0>(top).relu());
    QVERIFY(at::equal(f, want));
    QVERIFY((f.narrow(1, 0, 16) > 0).sum(1).max().item<std::int64_t>() == 2);
    QVERIFY((f > 0).sum(1).max().item<std::int64_t>() <= 8);
    testutil::expectSparseEncoding(capped, x);
    QTemporaryDir dir;
    capped.save(dir.path().toStdString(), true);
    const auto copied = Sae::load(dir.path().toStdString(), c10::Device(c10::kCPU));
    qputenv("MONOSCOPE_SAE_MAP_ABOVE", "0");
    qputenv("MONOSCOPE_SAE_BLOCK_FEATURES", "48");
    const auto mapped = Sae::load(dir.path().toStdString(), c10::Device(c10::kCPU));
    qunsetenv("MONOSCOPE_SAE_MAP_ABOVE");
    qunsetenv("MONOSCOPE_SAE_BLOCK_FEATURES");
    QVERIFY(mapped->mapped());
    QVERIFY(testutil::maxAbsDiff(mapped->encode(x), copied->encode(x)) < 1e-4);
  }

  void badGroupsAreRefused() {
    c10::InferenceMode guard;
    auto base = Sae::load(testutil::fixture("sae/topk"), c10::Device(c10::kCPU));
    QTemporaryDir dir;
    const std::string d = dir.path().toStdString();
    grouped(*base).save(d);
    const nlohmann::json good = readJsonFile(d + "/cfg.json");
    QCOMPARE(good["metadata"]["topk_groups"]["k"].size(), std::size_t{3});
    const std::pair<nlohmann::json, std::string> bad[] = {
        {{{"ends", {16, 48}}, {"k", {2, 2, 3}}}, "sums to 7"},
        {{{"ends", {16, 48}}, {"k", {2, 2, 9}}}, "entry 3"},
        {{{"ends", {16, 48}}, {"k", {2, 6}}}, "one entry more"},
        {{{"ends", {48, 16}}, {"k", {2, 2, 4}}}, "must increase"},
        {{{"ends", {16, 48}}, {"k", {0, 4, 4}}}, "entry 1"},
        {{{"ends", {16, 300}}, {"k", {2, 2, 4}}}, "must increase"},
        {{{"ends", "16"}, {"k", {2, 2, 4}}}, "topk_groups.ends"},
    };
    for (const auto& [groups, needle] : bad) {
      nlohmann::json j = good;
      j["metadata"]["topk_groups"] = groups;
      std::ofstream(d + "/cfg.json") << j.dump();
      testutil::expectSaeRefused(d, needle);
    }
  }
};

QTEST_GUILESS_MAIN(TestSaeGroups)
#include "test_sae_groups.moc"
