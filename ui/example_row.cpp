#include "example_row.h"

#include <QButtonGroup>
#include <QHBoxLayout>
#include <QLabel>
#include <QToolButton>

#include "activation_histogram.h"
#include "token_text_view.h"

namespace monoscope::ui {

ExampleRow::ExampleRow(const core::Example& example, float scale, bool editable, QWidget* parent)
    : QWidget(parent), id_(example.id), text_(new TokenTextView(this)), buttons_(new QButtonGroup(this)) {
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  auto* value = new QLabel(QString::number(example.max_act, 'f', 2), this);
  value->setMinimumWidth(value->fontMetrics().horizontalAdvance("000.00"));
  value->setAlignment(Qt::AlignRight | Qt::AlignTop);
  value->setToolTip(tr("Activation at the outlined token"));
  layout->addWidget(value, 0, Qt::AlignTop);

  QVector<TokenCell> cells;
  for (std::size_t i = 0; i < example.tokens.size(); ++i) {
    TokenCell c;
    c.text = QString::fromStdString(example.tokens[i]);
    c.id = i < example.token_ids.size() ? example.token_ids[i] : -1;
    c.value = i < example.acts.size() ? example.acts[i] : 0.0f;
    cells.push_back(c);
  }
  text_->setTokens(cells, scale, example.center);
  layout->addWidget(text_, 1);

  QStringList others;
  for (const auto& s : example.scores) {
    if (s.scorer == "manual") label_ = s.score;
    else others << QStringLiteral("%1 %2").arg(QString::fromStdString(s.scorer)).arg(s.score);
  }
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
    b->setChecked(s == label_);
    b->setEnabled(editable);
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
  if (!others.isEmpty()) {
    auto* o = new QLabel(others.join(", "), this);
    o->setObjectName("other_scores");
    column->addWidget(o, 0, Qt::AlignRight);
  }
  column->addStretch();
  layout->addLayout(column);
}

int ExampleRow::manualLabel() const { return label_; }

}  // namespace monoscope::ui
