// BPE training: merges follow frequency, the vocabulary size is respected, round trips, errors.
#include <QTemporaryDir>
#include <QtTest>

#include "text/bpe_trainer.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace monoscope::core;

class TestBpeTrainer : public QObject {
  Q_OBJECT

  static std::string text() {
    std::string t;
    for (int i = 0; i < 50; ++i) {
      t += "the cat sat on the mat. The dog sat on the log! def main(): return 42\n";
      t += "naïve café 🙂 " + std::to_string(i * 37) + "\n";
    }
    return t;
  }

 private Q_SLOTS:
  void learnsFrequentWords() {
    BpeTrainOptions o;
    o.vocab_size = 300;
    BpeTrainer t(o);
    t.addText(text());
    const auto tok = *t.train();
    QCOMPARE(tok.vocabSize(), 300);
    const auto ids = tok.encodeIds(" the cat sat on the mat");
    QVERIFY2(ids.size() <= 6, "frequent words should be single tokens");
    const std::string probe = "unseen words ünïcode 🙂 and <|endoftext|> too";
    QCOMPARE(tok.decode(tok.encodeIds(probe)), probe);
    QCOMPARE(tok.encodeIds("<|endoftext|>").size(), std::size_t(1));
  }

  void stopsWhenPairsRunOut() {
    BpeTrainOptions o;
    o.vocab_size = 100000;
    BpeTrainer t(o);
    t.addText("abab abab abab");
    const auto tok = *t.train();
    QVERIFY(tok.vocabSize() < 300);
    QCOMPARE(tok.encodeIds("abab").size(), std::size_t(1));
  }

  void savesAndReloads() {
    BpeTrainOptions o;
    o.vocab_size = 350;
    BpeTrainer t(o);
    t.addText(text());
    const auto tok = *t.train();
    QTemporaryDir dir;
    tok.save(dir.path().toStdString());
    const auto back = Tokenizer::fromDirectory(dir.path().toStdString());
    QCOMPARE(back.encodeIds(text()), tok.encodeIds(text()));
  }

  void badOptionsAreRejected() {
    BpeTrainOptions o;
    o.vocab_size = 200;
    QVERIFY_EXCEPTION_THROWN(BpeTrainer{o}, Error);
    o.vocab_size = 300;
    BpeTrainer t(o);
    QVERIFY_EXCEPTION_THROWN(t.train(), Error);  // no text
    QVERIFY_EXCEPTION_THROWN(t.addText("bad \xff"), Error);
  }

  void cancellingReturnsNoTokenizer() {
    BpeTrainOptions o;
    o.vocab_size = 700;
    BpeTrainer t(o);
    t.addText(text());
    std::int64_t seen = 0;
    QVERIFY(!t.train([&](const Progress& p) {
                 seen = p.done;
                 return false;
               }).has_value());
    QCOMPARE(seen, std::int64_t{0});  // the first report, before any merge
  }
};

QTEST_GUILESS_MAIN(TestBpeTrainer)
#include "test_bpe_trainer.moc"
