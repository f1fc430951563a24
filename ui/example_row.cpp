#include "example_row.h"

#include <QButtonGroup>
#include <QHBoxLayout>
#include <QLabel>
#include <QToolButton>

#include "token_text_view.h"

namespace monoscope::ui {

ExampleRow::ExampleRow(QWidget* parent)
    : QWidget(parent), value_(new QLabel(this)), text_(new TokenTextView(this)), buttons_(new QButtonGroup(this)),
      others_(new QLabel(this)) {
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  value_->setMinimumWidth(value_->fontMetrics().horizontalAdvance("000.00"));
  value_->setAlignment(Qt::AlignRight | Qt::AlignTop);
  value_->setToolTip(tr("Activation at the outlined token"));
  layout->addWidget(value_, 0, Qt::AlignTop);
  layout->addWidget(text_, 1);

  auto* column = new QVBoxLayout;
  column->setSpacing(1);
  auto* row = new QHBoxLayout;
  row->setSpacing(1);
  buttons_->setExclusive(false);
  static const char* tips[4] = {"0: the concept is irrelevant throughout the context",
                                "1: related to the context but not near the highlighted text, or only vaguely",
                                "2: loosely related to the highlighted text, or to the context near it",
                                "3: cleanly identifies the activating text"};
  for (int s = 0; s < 4; ++s) {
    auto* b = new QToolButton(this);
    b->setText(QString::number(s));
    b->setCheckable(true);
    b->setToolTip(tr(tips[s]));
    b->setAutoRaise(true);
    b->setProperty("score", s);  // styled by FeaturePage's one style sheet
    buttons_->addButton(b, s);
    row->addWidget(b);
  }
  connect(buttons_, &QButtonGroup::idClicked, this, [this](int s) {
    label_ = (label_ == s) ? -1 : s;
    for (int k = 0; k < 4; ++k) buttons_->button(k)->setChecked(k == label_);
    Q_EMIT labelChosen(id_, label_);
  });
  column->addLayout(row);
  others_->setObjectName("other_scores");
  column->addWidget(others_, 0, Qt::AlignRight);
  column->addStretch();
  layout->addLayout(column);
}

void ExampleRow::setExample(const core::Example& example, float scale, bool editable) {
  id_ = example.id;
  value_->setText(QString::number(example.max_act, 'f', 2));
  // The source domain of the example's document, when the corpus records it.
  value_->setToolTip(example.domain.empty() ? QString() : tr("from %1 text").arg(QString::fromStdString(example.domain)));
  QVector<TokenCell> cells;
  cells.reserve(static_cast<int>(example.tokens.size()));
  for (std::size_t i = 0; i < example.tokens.size(); ++i) {
    TokenCell c;
    c.text = QString::fromStdString(example.tokens[i]);
    c.id = i < example.token_ids.size() ? example.token_ids[i] : -1;
    c.value = i < example.acts.size() ? example.acts[i] : 0.0f;
    cells.push_back(c);
  }
  text_->setTokens(cells, scale, example.center);
  label_ = -1;
  QStringList others;
  for (const auto& s : example.scores) {
    if (s.scorer == "manual") label_ = s.score;
    else others << QStringLiteral("%1 %2").arg(QString::fromStdString(s.scorer)).arg(s.score);
  }
  for (int s = 0; s < 4; ++s) {
    buttons_->button(s)->setChecked(s == label_);
    buttons_->button(s)->setEnabled(editable);
  }
  if (!example.domain.empty()) others.prepend(QString::fromStdString(example.domain));
  others_->setText(others.join(", "));
  others_->setVisible(!others.isEmpty());
}

int ExampleRow::manualLabel() const { return label_; }

}  // namespace monoscope::ui
