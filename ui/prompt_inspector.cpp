#include "prompt_inspector.h"

#include <QCheckBox>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

#include "api/training.h"
#include "feature_score_model.h"
#include "session.h"
#include "token_text_view.h"

namespace monoscope::ui {

namespace {
constexpr std::size_t kPerToken = 64;
}

PromptInspector::PromptInspector(Session* session, QWidget* parent) : QWidget(parent), session_(session) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  prompt_ = new QPlainTextEdit(this);
  prompt_->setPlaceholderText(tr("Type or paste text to inspect, then press Inspect (Ctrl+Return)"));
  prompt_->setMaximumHeight(56);
  layout->addWidget(prompt_);
  auto* bar = new QHBoxLayout;
  inspect_ = new QPushButton(tr("Inspect"), this);
  inspect_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Return));
  negative_ = new QLineEdit(this);
  negative_->setPlaceholderText(tr("Negative prompt for contrastive search"));
  contrast_ = new QPushButton(tr("Contrast"), this);
  bar->addWidget(inspect_);
  bar->addWidget(negative_, 1);
  bar->addWidget(contrast_);
  dense_last_ = new QCheckBox(tr("Dense features last"), this);
  dense_last_->setChecked(QSettings().value(QStringLiteral("inspector/denseLast"), true).toBool());
  dense_last_->setToolTip(tr("List features that fire on more than %1% of the database's tokens after the others "
                             "(they lead every list by activation and say little about this text)")
                              .arg(100.0 * FeatureScoreModel::kDense, 0, 'f', 0));
  bar->addWidget(dense_last_);
  layout->addLayout(bar);

  auto* scroll = new QScrollArea(this);
  scroll->setWidgetResizable(true);
  tokens_ = new TokenTextView(scroll);
  scroll->setWidget(tokens_);
  scroll->setMinimumHeight(40);
  status_ = new QLabel(tr("Tokens are highlighted for the selected feature; click a token for its features."), this);
  status_->setWordWrap(true);

  auto labeler = [this](qint64 f) { return session_->featureLabel(f); };
  token_model_ = new FeatureScoreModel(tr("Activation"), this);
  last_model_ = new FeatureScoreModel(tr("Activation"), this);
  contrast_model_ = new FeatureScoreModel(tr("Activation"), this);
  auto density = [this](qint64 f) { return session_->featureDensity(f); };
  for (auto* m : {token_model_, last_model_, contrast_model_}) {
    m->setLabeler(labeler);
    m->setDensity(density);
  }
  last_model_->setLimit(20);

  auto* split = new QSplitter(Qt::Vertical, this);
  auto* top = new QWidget(split);
  auto* top_layout = new QVBoxLayout(top);
  top_layout->setContentsMargins(0, 0, 0, 0);
  top_layout->addWidget(scroll, 1);
  top_layout->addWidget(status_);
  auto* tables = new QSplitter(Qt::Horizontal, split);
  auto box = [&](const QString& title, FeatureScoreModel* model) {
    auto* g = new QGroupBox(title, tables);
    auto* l = new QVBoxLayout(g);
    l->setContentsMargins(2, 2, 2, 2);
    l->addWidget(makeTable(model));
    return g;
  };
  box(tr("Selected token"), token_model_);
  box(tr("Last token (completeness probe)"), last_model_);
  box(tr("Contrastive (prompt, not negative)"), contrast_model_);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 2);  // the result tables get two thirds of the height
  layout->addWidget(split, 1);

  for (auto* m : {token_model_, last_model_, contrast_model_}) m->setDenseLast(dense_last_->isChecked());
  connect(dense_last_, &QCheckBox::toggled, this, [this](bool on) {
    QSettings().setValue(QStringLiteral("inspector/denseLast"), on);
    for (auto* m : {token_model_, last_model_, contrast_model_}) m->setDenseLast(on);
  });
  connect(inspect_, &QPushButton::clicked, this, &PromptInspector::inspect);
  connect(contrast_, &QPushButton::clicked, this, &PromptInspector::contrast);
  connect(negative_, &QLineEdit::returnPressed, this, &PromptInspector::contrast);
  connect(tokens_, &TokenTextView::tokenClicked, this, &PromptInspector::showToken);
  connect(session_, &Session::featureSelected, this, &PromptInspector::highlightFeature);
}

QTableView* PromptInspector::makeTable(FeatureScoreModel* model) {
  auto* table = new QTableView(this);
  table->setModel(model);
  // At least eight rows visible, header included.
  table->setMinimumHeight((table->fontMetrics().height() + 4) * 9 + 6);
  table->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(table, &QWidget::customContextMenuRequested, this, [this, table, model](const QPoint& pos) {
    const QModelIndex i = table->indexAt(pos);
    if (i.isValid()) session_->featureMenu(model->featureAt(i.row()), table->viewport()->mapToGlobal(pos), this);
  });
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  table->setSelectionMode(QAbstractItemView::SingleSelection);
  table->verticalHeader()->hide();
  table->horizontalHeader()->setStretchLastSection(true);
  table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + 4);
  connect(table, &QTableView::clicked, this,
          [this, model](const QModelIndex& i) { session_->selectFeature(model->featureAt(i.row())); });
  connect(table, &QTableView::activated, this,
          [this, model](const QModelIndex& i) { session_->selectFeature(model->featureAt(i.row())); });
  return table;
}

void PromptInspector::setPrompt(const QString& text) { prompt_->setPlainText(text); }

void PromptInspector::inspect() {
  const QString text = prompt_->toPlainText();
  if (text.isEmpty()) return;
  status_->setText(tr("Encoding..."));
  inspect_->setEnabled(false);
  session_->worker().post<core::EncodedText>(
      this, [text](const core::Engine& engine) { return engine.encode(text.toStdString(), kPerToken); },
      [this, text](core::EncodedText encoded) {
        inspect_->setEnabled(true);
        encoded_ = std::move(encoded);
        encoded_text_ = text;
        QVector<TokenCell> cells;
        for (const auto& t : encoded_.tokens) {
          TokenCell c;
          c.text = QString::fromStdString(t.text);
          c.id = t.id;
          c.byte_start = t.start;
          c.byte_end = t.end;
          const auto at = static_cast<std::size_t>(cells.size());
          c.sink = at < encoded_.sink.size() ? encoded_.sink[at] : 0;
          cells.push_back(c);
        }
        tokens_->setTokens(cells, 1.0f);
        std::vector<core::FeatureScore> last;
        if (!encoded_.active.empty())
          for (const auto& a : encoded_.active.back()) last.push_back({a.feature, a.value});
        last_model_->setScores(last);
        status_->setText(tr("%1 tokens in windows of %2. Click a token for its features.")
                             .arg(encoded_.tokens.size())
                             .arg(encoded_.window));
        showToken(static_cast<int>(encoded_.tokens.size()) - 1);
        highlightFeature(session_->currentFeature());
        Q_EMIT inspected();
      },
      [this](QString error) {
        inspect_->setEnabled(true);
        status_->setText(error);
      });
}

void PromptInspector::showToken(int token) {
  if (token < 0 || token >= static_cast<int>(encoded_.active.size())) return;
  token_ = token;
  tokens_->setSelected(token);
  std::vector<core::FeatureScore> scores;
  for (const auto& a : encoded_.active[token]) scores.push_back({a.feature, a.value});
  token_model_->setScores(scores);
  const auto sink = static_cast<std::size_t>(token) < encoded_.sink.size() ? encoded_.sink[static_cast<std::size_t>(token)]
                                                                           : core::EncodedText::kNoSink;
  if (sink == core::EncodedText::kFirstPosition)
    status_->setText(tr("Token %1 is the first of its window: an attention sink whose features are artifacts of "
                        "position, left out of contrastive search and, by default, of the database.").arg(token));
  else if (sink == core::EncodedText::kMassiveRow)
    status_->setText(tr("Token %1 has a residual norm over %2 times its window's median: an attention sink whose "
                        "features are artifacts of position, left out of contrastive search and, by default, of the database.")
                         .arg(token)
                         .arg(core::kMassiveRowFactor));
}

void PromptInspector::highlightFeature(qint64 feature) {
  if (feature < 0 || encoded_.tokens.empty()) return;
  const QString text = encoded_text_;
  session_->worker().post<std::vector<float>>(
      this, [text, feature](const core::Engine& engine) { return engine.featureValues(text.toStdString(), feature); },
      [this, text, feature](std::vector<float> values) {
        if (text != encoded_text_) return;  // a newer prompt replaced it
        float scale = session_->featureMax(feature);
        for (float v : values) scale = std::max(scale, v);
        tokens_->setValues(values, scale > 0 ? scale : 1.0f);
        float best = 0;
        for (float v : values) best = std::max(best, v);
        status_->setText(tr("Feature %1 (%2): strongest activation %3 on this text.")
                             .arg(feature)
                             .arg(session_->featureLabel(feature))
                             .arg(best, 0, 'f', 3));
      },
      [this](QString error) { status_->setText(error); });
}

void PromptInspector::contrast() {
  const QString text = prompt_->toPlainText(), negative = negative_->text();
  if (text.isEmpty() || negative.isEmpty()) {
    status_->setText(tr("Contrastive search needs a prompt and a negative prompt."));
    return;
  }
  contrast_->setEnabled(false);
  session_->worker().post<std::vector<core::FeatureScore>>(
      this,
      [text, negative](const core::Engine& engine) {
        return engine.contrastive(text.toStdString(), negative.toStdString(), 20);
      },
      [this](std::vector<core::FeatureScore> scores) {
        contrast_->setEnabled(true);
        contrast_model_->setScores(std::move(scores));
        Q_EMIT contrasted();
      },
      [this](QString error) {
        contrast_->setEnabled(true);
        status_->setText(error);
      });
}

}  // namespace monoscope::ui
