#include "feature_page.h"

#include <QComboBox>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QPushButton>
#include <QScrollArea>
#include <QSplitter>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include "activation_histogram.h"
#include "example_row.h"
#include "plot_export.h"
#include "session.h"
#include "token_text_view.h"

namespace monoscope::ui {

namespace {
QString shown(const std::string& token) { return TokenTextView::visible(QString::fromStdString(token)); }
}

FeaturePage::FeaturePage(Session* session, QWidget* parent) : QWidget(parent), session_(session) {
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(6, 6, 6, 6);

  auto* head = new QHBoxLayout;
  title_ = new QLabel(this);
  QFont big = title_->font();
  big.setPointSizeF(big.pointSizeF() * 1.4);
  big.setBold(true);
  title_->setFont(big);
  head->addWidget(title_);
  explanation_ = new QLineEdit(this);
  explanation_->setPlaceholderText(tr("Explanation of this feature"));
  explanation_->setObjectName("explanation");
  head->addWidget(explanation_, 1);
  save_ = new QPushButton(tr("Save"), this);
  save_->setToolTip(tr("Save the explanation as a new version (the history is kept)"));
  head->addWidget(save_);
  steer_ = new QPushButton(tr("Steer..."), this);
  steer_->setToolTip(tr("Add this feature to the steering panel"));
  head->addWidget(steer_);
  outer->addLayout(head);
  stats_ = new QLabel(this);
  stats_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  stats_->setTextFormat(Qt::PlainText);
  stats_->setWordWrap(true);  // a long token list wraps instead of widening the window
  stats_->setMinimumWidth(200);
  outer->addWidget(stats_);
  connect(save_, &QPushButton::clicked, this, &FeaturePage::saveExplanation);
  connect(explanation_, &QLineEdit::returnPressed, this, &FeaturePage::saveExplanation);
  connect(steer_, &QPushButton::clicked, this, [this]() {
    if (feature() >= 0) Q_EMIT session_->steerRequested(feature());
  });

  // Top row: the activation histogram beside the logit effects.
  auto* top = new QSplitter(Qt::Horizontal, this);
  plot_ = new QCustomPlot(top);
  plot_->setMinimumHeight(180);
  histogram_ = new ActivationHistogram(plot_);
  enablePlotExport(plot_, "activation-histogram");
  auto* logits_box = new QGroupBox(tr("Logit effects"), top);
  logits_box->setMinimumWidth(260);
  auto* logits_layout = new QVBoxLayout(logits_box);
  logits_layout->setContentsMargins(4, 2, 4, 2);
  auto* logit_lists = new QHBoxLayout;
  logits_up_ = new QListWidget(logits_box);
  logits_down_ = new QListWidget(logits_box);
  logits_up_->setToolTip(tr("Tokens this feature's decoder direction promotes most"));
  logits_down_->setToolTip(tr("Tokens it suppresses most"));
  logit_lists->addWidget(logits_up_);
  logit_lists->addWidget(logits_down_);
  logits_layout->addLayout(logit_lists, 3);
  logit_plot_ = new QCustomPlot(logits_box);
  logit_plot_->setObjectName("logit_histogram");
  enablePlotExport(logit_plot_, "logit-effects");
  logit_plot_->setMinimumHeight(80);
  logits_layout->addWidget(logit_plot_, 2);
  top->addWidget(plot_);
  top->addWidget(logits_box);
  top->setStretchFactor(0, 1);
  top->setStretchFactor(1, 1);
  top->setSizes({600, 400});

  // Bottom row: the examples beside the neighbours.
  auto* bottom = new QSplitter(Qt::Horizontal, this);
  auto* left = new QWidget(bottom);
  auto* left_layout = new QVBoxLayout(left);
  left_layout->setContentsMargins(0, 0, 0, 0);
  sections_ = new QComboBox(left);
  sections_->setObjectName("sections");
  sections_->setToolTip(tr("Top activations, or the uniform sample of one activation interval (or click a bar)"));
  left_layout->addWidget(sections_);
  auto* scroll = new QScrollArea(left);
  scroll->setWidgetResizable(true);
  examples_ = new QWidget(scroll);
  // One style sheet for every example row (cheaper than one per button).
  QString style = "QLabel#other_scores { color: gray; font-size: 8pt; }";
  for (int s = 0; s < 4; ++s)
    style += QStringLiteral(" QToolButton[score=\"%1\"]:checked { background: %2; color: %3; border-radius: 3px; }")
                 .arg(s)
                 .arg(ActivationHistogram::scoreColor(s).name(), s == 0 || s == 3 ? "white" : "black");
  examples_->setStyleSheet(style);
  examples_layout_ = new QVBoxLayout(examples_);
  examples_layout_->setContentsMargins(0, 0, 0, 0);
  examples_layout_->setSpacing(2);
  examples_layout_->addStretch();
  scroll->setWidget(examples_);
  left_layout->addWidget(scroll, 1);
  connect(sections_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int) { buildExamples(); });
  connect(histogram_, &ActivationHistogram::intervalClicked, this, [this](int k) { showSection(k + 1); });
  auto* neighbours_box = new QGroupBox(tr("Neighbours (decoder cosine)"), bottom);
  auto* nb_layout = new QVBoxLayout(neighbours_box);
  nb_layout->setContentsMargins(4, 2, 4, 2);
  neighbours_ = new QListWidget(neighbours_box);
  neighbours_->setObjectName("neighbours");
  nb_layout->addWidget(neighbours_);
  connect(neighbours_, &QListWidget::itemActivated, this,
          [this](QListWidgetItem* item) { session_->selectFeature(item->data(Qt::UserRole).toLongLong()); });
  connect(neighbours_, &QListWidget::itemClicked, this,
          [this](QListWidgetItem* item) { session_->selectFeature(item->data(Qt::UserRole).toLongLong()); });
  bottom->setStretchFactor(0, 3);
  bottom->setStretchFactor(1, 1);
  bottom->setSizes({860, 320});

  auto* rows = new QSplitter(Qt::Vertical, this);
  rows->addWidget(top);
  rows->addWidget(bottom);
  rows->setStretchFactor(0, 1);
  rows->setStretchFactor(1, 2);
  rows->setSizes({230, 460});
  outer->addWidget(rows, 1);
  clear(tr("Select a feature in the list, the map or the prompt inspector."));
}

void FeaturePage::clear(const QString& message) {
  page_.reset();
  title_->setText(tr("No feature"));
  stats_->setText(message);
  explanation_->clear();
  explanation_->setEnabled(false);
  save_->setEnabled(false);
  steer_->setEnabled(false);
  sections_->clear();
  logits_up_->clear();
  logits_down_->clear();
  neighbours_->clear();
  buildExamples();
}

void FeaturePage::showFeature(qint64 feature) {
  if (!session_->db()) return clear(tr("Open a feature database (File > Open Feature Database)."));
  try {
    page_ = session_->db()->page(feature);
  } catch (const std::exception& e) {
    return clear(QString::fromUtf8(e.what()));
  }
  const auto& s = page_->summary;
  title_->setText(tr("Feature %1").arg(s.id));
  explanation_->setText(QString::fromStdString(s.explanation));
  explanation_->setEnabled(true);
  save_->setEnabled(session_->writable());
  steer_->setEnabled(true);
  explanation_->setToolTip(tr("Version %1").arg(page_->explanation_version));
  QString stats = s.count == 0 ? tr("Dead: never active in the %1 scanned tokens.").arg(session_->db()->info().tokens)
                               : tr("density %1  (%2 activations)    max %3    mean %4")
                                     .arg(s.density, 0, 'e', 2)
                                     .arg(s.count)
                                     .arg(s.max_act, 0, 'f', 3)
                                     .arg(s.mean_act, 0, 'f', 3);
  // The search tokens leave out whitespace: a feature of line breaks and indents has none.
  if (s.count > 0 && !s.top_tokens.empty()) stats += tr("    top tokens: %1").arg(QString::fromStdString(s.top_tokens));
  stats_->setText(stats);
  histogram_->setSelectedInterval(-1);
  histogram_->setPage(*page_);
  {
    const QSignalBlocker block(sections_);
    sections_->clear();
    sections_->addItem(tr("Top activations (%1)").arg(page_->top_examples.size()));
    for (std::size_t k = 0; k < page_->intervals.size(); ++k) {
      const auto& in = page_->intervals[k];
      sections_->addItem(tr("Interval %1: (%2, %3]  %4 activations, %5 sampled")
                             .arg(k + 1)
                             .arg(in.lo, 0, 'f', 2)
                             .arg(in.hi, 0, 'f', 2)
                             .arg(in.count)
                             .arg(in.examples.size()));
    }
    sections_->setCurrentIndex(0);
  }
  buildExamples();
  fillLogits();
  fillNeighbours();
}

void FeaturePage::showSection(int section) {
  if (section >= 0 && section < sections_->count()) sections_->setCurrentIndex(section);
}

int FeaturePage::section() const { return sections_->currentIndex(); }

QList<ExampleRow*> FeaturePage::exampleRows() const {
  QList<ExampleRow*> shown;
  for (auto* row : rows_)
    if (!row->isHidden()) shown.push_back(row);
  return shown;
}

void FeaturePage::buildExamples() {
  const std::vector<core::Example>* examples = nullptr;
  if (page_) {
    const int section = sections_->currentIndex();
    if (section > 0) histogram_->setSelectedInterval(section - 1);
    examples = &page_->top_examples;
    if (section > 0 && section - 1 < static_cast<int>(page_->intervals.size()))
      examples = &page_->intervals[section - 1].examples;
  }
  const int n = examples ? static_cast<int>(examples->size()) : 0;
  // Rows are kept and refilled; only a longer list creates new ones.
  while (rows_.size() < n) {
    auto* row = new ExampleRow(examples_);
    connect(row, &ExampleRow::labelChosen, this, [this](std::int64_t example, int score) {
      try {
        session_->db()->setLabel(example, score);
        recordLabel(example, score);
        Q_EMIT session_->featureEdited(feature());
      } catch (const std::exception& err) {
        QMessageBox::warning(this, tr("Label"), QString::fromUtf8(err.what()));
      }
    });
    examples_layout_->insertWidget(rows_.size(), row);
    rows_.push_back(row);
  }
  const float scale = page_ ? page_->summary.max_act : 1.0f;
  for (int i = 0; i < rows_.size(); ++i) {
    if (i < n) rows_[i]->setExample((*examples)[i], scale, session_->writable());
    rows_[i]->setVisible(i < n);
  }
}

void FeaturePage::recordLabel(std::int64_t example, int score) {
  auto update = [&](std::vector<core::Example>& examples) {
    for (auto& e : examples) {
      if (e.id != example) continue;
      e.scores.erase(std::remove_if(e.scores.begin(), e.scores.end(), [](const auto& s) { return s.scorer == "manual"; }),
                     e.scores.end());
      if (score >= 0) e.scores.push_back({"manual", score});
    }
  };
  update(page_->top_examples);
  for (auto& in : page_->intervals) update(in.examples);
  histogram_->setPage(*page_);  // the interval's colour mix changes with the label
}

void FeaturePage::fillLogits() {
  logits_up_->clear();
  logits_down_->clear();
  for (const auto& [token, value] : page_->logits_top)
    logits_up_->addItem(QStringLiteral("+%1  %2").arg(value, 0, 'f', 3).arg(shown(token)));
  for (const auto& [token, value] : page_->logits_bottom)
    logits_down_->addItem(QStringLiteral("%1  %2").arg(value, 0, 'f', 3).arg(shown(token)));
  logit_plot_->clearPlottables();
  const auto& h = page_->logits_histogram;
  if (!h.counts.empty()) {
    auto* bars = new QCPBars(logit_plot_->xAxis, logit_plot_->yAxis);
    const double w = (h.hi - h.lo) / h.counts.size();
    QVector<double> keys, values;
    double top = 1;
    for (std::size_t b = 0; b < h.counts.size(); ++b) {
      keys << h.lo + (b + 0.5) * w;
      values << static_cast<double>(h.counts[b]);
      top = std::max(top, values.back());
    }
    bars->setWidth(w);
    bars->setData(keys, values, true);
    bars->setPen(Qt::NoPen);
    bars->setBrush(QColor(70, 110, 180));
    logit_plot_->xAxis->setRange(h.lo, h.hi);
    logit_plot_->yAxis->setRange(0, top * 1.05);
    logit_plot_->xAxis->setLabel(tr("logit effect over the vocabulary"));
  }
  logit_plot_->replot();
}

void FeaturePage::fillNeighbours() {
  neighbours_->clear();
  for (const auto& [id, cosine] : page_->neighbours) {
    auto* item = new QListWidgetItem(QStringLiteral("%1   %2   %3")
                                         .arg(id)
                                         .arg(cosine, 0, 'f', 3)
                                         .arg(session_->featureLabel(id)),
                                     neighbours_);
    item->setData(Qt::UserRole, QVariant::fromValue<qint64>(id));
  }
}

void FeaturePage::saveExplanation() {
  if (!page_ || !session_->db() || !session_->writable()) return;
  const std::string text = explanation_->text().trimmed().toStdString();
  if (text == page_->summary.explanation) return;
  try {
    page_->explanation_version = session_->db()->setExplanation(feature(), text, "manual");
    page_->summary.explanation = text;
    explanation_->setToolTip(tr("Version %1").arg(page_->explanation_version));
    Q_EMIT session_->featureEdited(feature());
    Q_EMIT session_->status(tr("Saved explanation version %1 of feature %2.").arg(page_->explanation_version).arg(feature()));
  } catch (const std::exception& e) {
    QMessageBox::warning(this, tr("Explanation"), QString::fromUtf8(e.what()));
  }
}

}  // namespace monoscope::ui
