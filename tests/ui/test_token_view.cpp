// Token highlighting: the inspector's token cells carry exactly the tokenizer's byte offsets;
// each cell's characters are that byte span of the input (whitespace and newlines included); a
// token that splits a UTF-8 character still renders; hit-testing finds every token; and the
// background intensity grows with the activation.
#include <QSignalSpy>
#include <QtTest>

#include "api/engine.h"
#include "prompt_inspector.h"
#include "session.h"
#include "token_text_view.h"
#include "ui_test_util.h"

using namespace monoscope;
using namespace monoscope::ui;

class TestTokenView : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() { test::isolateSettings(); }

  void spansEqualTokenizerOffsets() {
    const std::string text = "In the beginning\n  God created naïve cafés, 日本語 and 🙂\tend.";
    Session session;
    session.openEngine(test::demoModel(), test::demoSae());
    QTRY_VERIFY_WITH_TIMEOUT(session.worker().hasEngine(), 60000);
    PromptInspector inspector(&session);
    QSignalSpy inspected(&inspector, &PromptInspector::inspected);
    inspector.setPrompt(QString::fromStdString(text));
    inspector.inspect();
    QTRY_COMPARE_WITH_TIMEOUT(inspected.count(), 1, 30000);

    core::EngineOptions o;
    o.model_dir = test::demoModel().toStdString();
    const auto engine = core::Engine::open(o);
    const auto tokens = engine->tokenize(text);
    const auto& cells = inspector.tokens()->tokens();
    QCOMPARE(cells.size(), static_cast<int>(tokens.size()));
    std::size_t covered = 0;
    bool split_seen = false;
    QString joined;
    for (int i = 0; i < cells.size(); ++i) {
      QCOMPARE(cells[i].byte_start, tokens[i].start);
      QCOMPARE(cells[i].byte_end, tokens[i].end);
      QCOMPARE(cells[i].id, tokens[i].id);
      QCOMPARE(cells[i].byte_start, covered);  // contiguous, no gaps
      covered = cells[i].byte_end;
      const QByteArray bytes = QByteArray::fromStdString(text.substr(tokens[i].start, tokens[i].end - tokens[i].start));
      const QString decoded = QString::fromUtf8(bytes);
      if (!decoded.contains(QChar(0xFFFD))) {
        QCOMPARE(cells[i].text, decoded);  // exact characters, whitespace included
      } else {
        split_seen = true;  // a split character shows whole on its first token, the later ones empty
        QVERIFY(!cells[i].text.contains(QChar(0xFFFD)));
      }
      joined += cells[i].text;
    }
    QCOMPARE(covered, text.size());
    QCOMPARE(joined, QString::fromStdString(text));  // the cells spell the text, split characters included
    Q_UNUSED(split_seen);
    // The display spans tile the display text.
    const auto spans = inspector.tokens()->displaySpans();
    const QString shown = inspector.tokens()->displayText();
    for (int i = 0; i < spans.size(); ++i) QCOMPARE(shown.mid(spans[i].first, spans[i].second - spans[i].first), cells[i].text);
  }

  void hitTestingAndIntensity() {
    TokenTextView view;
    QVector<TokenCell> cells;
    for (int i = 0; i < 60; ++i) cells.push_back({QStringLiteral(" word%1").arg(i), i, 0, 0, float(i % 7)});
    cells.push_back({"\n", 60, 0, 0, 0.0f});
    cells.push_back({" after", 61, 0, 0, 1.0f});
    view.resize(300, 100);
    view.setTokens(cells, 6.0f, 5);
    view.resize(300, view.heightForWidth(300));
    view.show();
    for (int i = 0; i < cells.size(); ++i) QCOMPARE(view.tokenAt(view.tokenRect(i).center()), i);
    // Wrapped onto several lines; the token after a newline starts a line.
    QVERIFY(view.heightForWidth(300) > 3 * view.fontMetrics().height());
    QCOMPARE(view.tokenRect(61).x(), 0);
    QCOMPARE(TokenTextView::highlight(0.0f, 6.0f).alpha(), 0);
    QVERIFY(TokenTextView::highlight(1.0f, 6.0f).alpha() < TokenTextView::highlight(5.0f, 6.0f).alpha());
    QCOMPARE(TokenTextView::highlight(60.0f, 6.0f).alpha(), TokenTextView::highlight(6.0f, 6.0f).alpha());
    QCOMPARE(TokenTextView::visible("a\nb\tc"), QString("a") + QChar(0x21B5) + "b" + QChar(0x2192) + "c");
    QSignalSpy clicked(&view, &TokenTextView::tokenClicked);
    QTest::mouseClick(&view, Qt::LeftButton, {}, view.tokenRect(7).center());
    QCOMPARE(clicked.count(), 1);
    QCOMPARE(clicked.front().front().toInt(), 7);
  }

  // An attention sink is drawn flagged (a dashed underline); nothing else about it changes.
  void sinksAreUnderlined() {
    auto draw = [](std::uint8_t sink) {
      TokenTextView view;
      QVector<TokenCell> cells{{" plain", 1, 0, 0, 0.0f}, {" sink", 2, 0, 0, 0.0f}};
      cells[1].sink = sink;
      view.setTokens(cells, 1.0f);
      view.resize(300, view.heightForWidth(300));
      return std::make_pair(view.grab().toImage(), view.tokenRect(1));
    };
    const auto [plain, r] = draw(0);
    const auto [first, r1] = draw(1);
    const auto [massive, r2] = draw(2);
    QCOMPARE(r1, r);
    QVERIFY(plain != first);
    QCOMPARE(first, massive);
    // Only the flagged token's bottom edge differs.
    for (int y = 0; y < plain.height(); ++y)
      for (int x = 0; x < plain.width(); ++x)
        if (plain.pixel(x, y) != first.pixel(x, y)) QVERIFY(r.contains(x, y) && y >= r.bottom() - 2);
  }
};

QTEST_MAIN(TestTokenView)
#include "test_token_view.moc"
