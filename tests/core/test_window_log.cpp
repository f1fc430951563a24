// A scanned window's record: which positions keep their activations (the first position, document
// boundaries and rows with a massive norm do not), the blob round trip, and the rule that tells
// the massive rows.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <QtTest>
#include <limits>

#include "index/window_log.h"
#include "sae/sae.h"
#include "util/error.h"

using namespace monoscope::core;

class TestWindowLog : public QObject {
  Q_OBJECT

  // Two windows of four positions; every row r holds feature r (activation r + 0.5) and, for odd
  // rows, feature 100 too.
  static SparseRows rows8() {
    SparseRows rows;
    for (std::uint32_t r = 0; r < 8; ++r) {
      rows.features.push_back(r);
      rows.acts.push_back(static_cast<float>(r) + 0.5f);
      if (r % 2 == 1) {
        rows.features.push_back(100);
        rows.acts.push_back(1.0f);
      }
      rows.offsets.push_back(static_cast<std::uint32_t>(rows.features.size()));
    }
    return rows;
  }

 private Q_SLOTS:
  void sinksRecordNoActivations() {
    const SparseRows rows = rows8();
    // Second window (rows 4..7): first position skipped, token 9 is the boundary, row 6 massive.
    const bool massive[4] = {false, false, true, false};
    const WindowLog w = WindowLog::fromRows(rows, 4, 4, {5, 9, 7, 8}, 1, 9, massive);
    QCOMPARE(w.tokens, (std::vector<std::int32_t>{5, 9, 7, 8}));  // every token stays as context
    QCOMPARE(w.offsets, (std::vector<std::uint32_t>{0, 0, 0, 0, 2}));
    QCOMPARE(w.features, (std::vector<std::uint32_t>{7, 100}));
    QCOMPARE(w.value(3, 7), 7.5f);
    QCOMPARE(w.value(2, 6), 0.0f);
    // Nothing skipped: every row's entries, in order.
    const WindowLog all = WindowLog::fromRows(rows, 0, 4, {1, 2, 3, 4}, 0, -1, nullptr);
    QCOMPARE(all.offsets, (std::vector<std::uint32_t>{0, 1, 3, 4, 6}));
    QCOMPARE(all.value(1, 100), 1.0f);
    // The blob round trip keeps it whole.
    const std::string blob = w.serialize();
    const WindowLog back = WindowLog::parse(blob.data(), blob.size(), "test");
    QCOMPARE(back.tokens, w.tokens);
    QCOMPARE(back.offsets, w.offsets);
    QCOMPARE(back.features, w.features);
    QCOMPARE(back.acts, w.acts);
  }

  // Rows over factor x the median of the rows after each window's first position are marked; the
  // first positions (huge, but sinks of their own) neither count toward the median nor are marked.
  void sinkMaskUsesTheMedianAfterFirstPositions() {
    c10::InferenceMode guard;
    at::Tensor norms = at::full({2, 8}, 100.0f);
    norms.select(1, 0).fill_(20000.0f);  // first positions
    norms[1][2] = 5000.0f;               // a secondary sink in the second window
    norms[0][5] = 900.0f;                // under 10x the median: ordinary
    const at::Tensor mask = windowSinkMask(norms, 10.0);
    QCOMPARE(mask.scalar_type(), at::kBool);
    QCOMPARE(mask.sum().item<std::int64_t>(), std::int64_t{1});
    QVERIFY(mask[1][2].item<bool>());
    QVERIFY(!mask[0][0].item<bool>() && !mask[1][0].item<bool>());
    // Rows are in the order of the flat block: window w's position p is row w * positions + p.
    QVERIFY(mask.contiguous().view({-1})[8 + 2].item<bool>());
    // A short window (under kSinkMedianRows rows after its first) uses the reference, or marks
    // nothing without one; a NaN row is marked.
    const at::Tensor shortw = at::tensor({20000.0f, 3000.0f, 120.0f}).view({1, 3});
    QCOMPARE(windowSinkMask(shortw, 10.0).sum().item<std::int64_t>(), std::int64_t{0});
    QVERIFY(windowSinkMask(shortw, 10.0, 150.0)[0][1].item<bool>());
    QVERIFY(!windowSinkMask(shortw, 10.0, 150.0)[0][2].item<bool>());
    norms[0][3] = std::numeric_limits<float>::quiet_NaN();
    QVERIFY(windowSinkMask(norms, 10.0)[0][3].item<bool>());
    QCOMPARE(windowSinkMask(at::zeros({1, 1}), 10.0, 1.0).sum().item<std::int64_t>(), std::int64_t{0});
    QVERIFY_EXCEPTION_THROWN(windowSinkMask(at::zeros({4}), 10.0), Error);
    // Row norms in float32 of a bfloat16 block.
    const at::Tensor x = at::ones({3, 4}).to(at::kBFloat16);
    QCOMPARE(rowNorms(x).scalar_type(), at::kFloat);
    QCOMPARE(rowNorms(x)[1].item<float>(), 2.0f);
  }

  void badSpansAreRefused() {
    const SparseRows rows = rows8();
    QVERIFY_EXCEPTION_THROWN(WindowLog::fromRows(rows, 6, 4, {1, 2, 3, 4}, 0, -1, nullptr), Error);  // past the rows
    QVERIFY_EXCEPTION_THROWN(WindowLog::fromRows(rows, 0, 4, {1, 2, 3}, 0, -1, nullptr), Error);     // tokens != n
    QVERIFY_EXCEPTION_THROWN(WindowLog::fromRows(rows, -1, 4, {1, 2, 3, 4}, 0, -1, nullptr), Error);
    const std::string blob = WindowLog::fromRows(rows, 0, 4, {1, 2, 3, 4}, 0, -1, nullptr).serialize();
    QVERIFY_EXCEPTION_THROWN(WindowLog::parse(blob.data(), blob.size() - 1, "test"), Error);
  }
};

QTEST_APPLESS_MAIN(TestWindowLog)
#include "test_window_log.moc"
