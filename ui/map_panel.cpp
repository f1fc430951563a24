#include "map_panel.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>
#include <algorithm>
#include <map>

#include "map_view.h"
#include "session.h"

namespace monoscope::ui {

MapPanel::MapPanel(Session* session, QWidget* parent) : QWidget(parent), session_(session), view_(new MapView(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  auto* bar = new QHBoxLayout;
  concept_ = new QLineEdit(this);
  concept_->setPlaceholderText(tr("Concept prompt: light up the features that fire on it"));
  light_ = new QPushButton(tr("Light up"), this);
  auto* clear = new QPushButton(tr("Clear"), this);
  auto* reset = new QPushButton(tr("Fit"), this);
  reset->setToolTip(tr("Show the whole map (or double-click it)"));
  concept_->setMinimumWidth(concept_->fontMetrics().horizontalAdvance(QString(8, QChar('n'))));
  bar->addWidget(concept_, 1);
  bar->addWidget(light_);
  bar->addWidget(clear);
  bar->addWidget(reset);
  layout->addLayout(bar);
  layout->addWidget(view_, 1);
  status_ = new QLabel(this);
  status_->setWordWrap(true);
  status_->setText(tr("Scroll to zoom, drag to pan, click a point to open its feature."));
  layout->addWidget(status_);
  view_->setLabeler([this](qint64 f) { return session_->featureLabel(f); });
  connect(view_, &MapView::featureClicked, session_, &Session::selectFeature);
  view_->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(view_, &QWidget::customContextMenuRequested, this, [this](const QPoint& pos) {
    session_->featureMenu(view_->featureAt(pos), view_->mapToGlobal(pos), this);
  });
  connect(light_, &QPushButton::clicked, this, &MapPanel::lightUp);
  connect(concept_, &QLineEdit::returnPressed, this, &MapPanel::lightUp);
  connect(clear, &QPushButton::clicked, this, [this]() {
    view_->setLit({});
    status_->clear();
  });
  connect(reset, &QPushButton::clicked, view_, &MapView::resetView);
  connect(session_, &Session::databaseChanged, this, &MapPanel::reload);
  connect(session_, &Session::featureSelected, this, &MapPanel::follow);
  reload();
}

void MapPanel::reload() {
  const core::FeatureDb* db = session_->db();
  view_->setLit({});
  // A dictionary past a quarter of a million features is drawn from the database's map layers
  // (density tiles, points read by cell when zoomed in) instead of being held as points.
  if (db && db->mapLayout().present && db->mapLayout().points > kPointsInMemory) {
    view_->setLayers(db);
    return;
  }
  view_->setPoints(db ? db->mapPoints() : std::vector<core::MapPoint>{});
}

void MapPanel::follow(qint64 feature) {
  std::vector<qint64> neighbours;
  if (session_->db()) {
    try {
      for (const auto& [id, cosine] : session_->db()->neighbours(feature)) neighbours.push_back(id);
    } catch (const std::exception&) {
    }
  }
  view_->setSelection(feature, neighbours);
}

void MapPanel::lightUp() {
  const QString text = concept_->text();
  if (text.trimmed().isEmpty()) return;
  status_->setText(tr("Encoding the concept prompt..."));
  light_->setEnabled(false);
  using Lit = std::vector<std::pair<qint64, float>>;
  session_->worker().post<Lit>(
      this,
      [text](const core::Engine& engine) {
        // The concept is read after a line break, so that its first word is not the window's
        // first token; attention sinks (that first token, massive rows) are left out: their
        // features are artifacts of position, and relative to their own maxima they would lead.
        const auto encoded = engine.encode("\n" + text.toStdString(), 32);
        std::map<qint64, float> best;
        for (std::size_t t = 0; t < encoded.active.size(); ++t) {
          if (t < encoded.sink.size() && encoded.sink[t] != core::EncodedText::kNoSink) continue;
          for (const auto& a : encoded.active[t]) best[a.feature] = std::max(best[a.feature], a.value);
        }
        Lit lit(best.begin(), best.end());
        return lit;
      },
      [this](Lit lit) {
        light_->setEnabled(true);
        // Strength relative to each feature's own maximum over the corpus when known.
        for (auto& [id, value] : lit) {
          const float max = session_->featureMax(id);
          value = max > 0 ? value / max : 1.0f;
        }
        std::sort(lit.begin(), lit.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
        view_->setLit(lit);
        status_->setText(tr("%1 features fire on the prompt; the strongest is feature %2.")
                             .arg(lit.size())
                             .arg(lit.empty() ? -1 : lit.front().first));
        Q_EMIT this->lit(static_cast<int>(lit.size()));
      },
      [this](QString error) {
        light_->setEnabled(true);
        status_->setText(error);
      });
}

}  // namespace monoscope::ui
