#include "feature_list_panel.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QTableView>
#include <QTimer>
#include <QVBoxLayout>

#include "feature_list_model.h"
#include "session.h"

namespace monoscope::ui {

FeatureListPanel::FeatureListPanel(Session* session, QWidget* parent)
    : QWidget(parent), session_(session), model_(new FeatureListModel(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  search_ = new QLineEdit(this);
  search_->setPlaceholderText(tr("Search explanations and top tokens (Ctrl+F)"));
  search_->setClearButtonEnabled(true);
  layout->addWidget(search_);
  auto* bar = new QHBoxLayout;
  filter_ = new QComboBox(this);
  filter_->addItem(tr("All features"), int(core::FeatureFilter::All));
  filter_->addItem(tr("Alive"), int(core::FeatureFilter::Alive));
  filter_->addItem(tr("Dead"), int(core::FeatureFilter::Dead));
  filter_->addItem(tr("Dense (density > 1%)"), int(core::FeatureFilter::Dense));
  filter_->addItem(tr("Labelled"), int(core::FeatureFilter::Labelled));
  bar->addWidget(filter_, 1);
  count_ = new QLabel(this);
  bar->addWidget(count_);
  layout->addLayout(bar);
  view_ = new QTableView(this);
  view_->setModel(model_);
  view_->setSortingEnabled(true);
  view_->sortByColumn(FeatureListModel::IdColumn, Qt::AscendingOrder);
  view_->setSelectionBehavior(QAbstractItemView::SelectRows);
  view_->setSelectionMode(QAbstractItemView::SingleSelection);
  view_->verticalHeader()->hide();
  view_->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
  view_->verticalHeader()->setDefaultSectionSize(view_->fontMetrics().height() + 4);
  view_->horizontalHeader()->setStretchLastSection(true);
  view_->setWordWrap(false);
  view_->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(view_, &QWidget::customContextMenuRequested, this, [this](const QPoint& pos) {
    const QModelIndex i = view_->indexAt(pos);
    if (i.isValid()) session_->featureMenu(model_->featureAt(i.row()), view_->viewport()->mapToGlobal(pos), this);
  });
  // The numbers as narrow as their digits; the explanation gets the rest of the row, at least
  // about twenty characters of it (the panel is never narrower than that).
  const QFontMetrics fm = view_->fontMetrics();
  setMinimumWidth(fm.horizontalAdvance(QString(44, QChar('n'))));
  view_->setColumnWidth(FeatureListModel::IdColumn, fm.horizontalAdvance("000000") + 8);
  view_->setColumnWidth(FeatureListModel::DensityColumn, fm.horizontalAdvance("0.00e-00") + 8);
  view_->setColumnWidth(FeatureListModel::MaxColumn, fm.horizontalAdvance("000.0") + 8);
  layout->addWidget(view_, 1);

  debounce_ = new QTimer(this);
  debounce_->setSingleShot(true);
  debounce_->setInterval(150);
  connect(search_, &QLineEdit::textChanged, debounce_, qOverload<>(&QTimer::start));
  connect(debounce_, &QTimer::timeout, this, &FeatureListPanel::applyQuery);
  connect(filter_, qOverload<int>(&QComboBox::currentIndexChanged), this, &FeatureListPanel::applyQuery);
  connect(view_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this](const QModelIndex& current) {
    if (current.isValid()) session_->selectFeature(model_->featureAt(current.row()));
  });
  connect(session_, &Session::databaseChanged, this, [this]() {
    model_->setDatabase(session_->db());
    applyQuery();
  });
  connect(session_, &Session::featureSelected, this, &FeatureListPanel::follow);
  connect(session_, &Session::featureEdited, this, [this](qint64 f) { model_->refresh(f); });
}

void FeatureListPanel::applyQuery() {
  core::FeatureQuery q = model_->query();
  q.text = search_->text().trimmed().toStdString();
  q.filter = static_cast<core::FeatureFilter>(filter_->currentData().toInt());
  try {
    model_->setQuery(q);
    if (model_->truncated()) {
      count_->setText(tr("first %L1 matches").arg(model_->rowCount()));
      count_->setToolTip(tr("More features match than the list holds: it shows the first %L1 by id, in the chosen order. "
                            "Narrow the search, or sort the whole dictionary by density or max.")
                             .arg(model_->rowCount()));
    } else {
      count_->setText(tr("%L1 features").arg(model_->rowCount()));
      count_->setToolTip({});
    }
  } catch (const std::exception& e) {
    count_->setText(tr("search error"));
    count_->setToolTip(QString::fromUtf8(e.what()));
  }
  follow(session_->currentFeature());
}

void FeatureListPanel::follow(qint64 feature) {
  const int row = model_->rowOf(feature);
  if (row < 0) return;
  const QModelIndex index = model_->index(row, 0);
  if (view_->currentIndex().row() == row) return;
  const QSignalBlocker block(view_->selectionModel());
  view_->selectionModel()->setCurrentIndex(index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
  view_->scrollTo(index);
  view_->viewport()->update();
}

void FeatureListPanel::focusSearch() {
  search_->setFocus();
  search_->selectAll();
}

void FeatureListPanel::step(int delta) {
  if (model_->rowCount() == 0) return;
  int row = view_->currentIndex().isValid() ? view_->currentIndex().row() + delta : 0;
  row = std::clamp(row, 0, model_->rowCount() - 1);
  view_->setCurrentIndex(model_->index(row, 0));
}

}  // namespace monoscope::ui
