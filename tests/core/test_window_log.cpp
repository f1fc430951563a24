// A scanned window's record: which positions keep their activations (the first position, document
// boundaries and rows with a massive norm do not), and the blob round trip.
#include <QtTest>

#include "index/window_log.h"
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
