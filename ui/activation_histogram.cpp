#include "activation_histogram.h"

#include <qcustomplot.h>

namespace monoscope::ui {

int preferredScore(const core::Example& example) {
  int manual = -1, llm = -1, other = -1;
  for (const auto& s : example.scores) {
    if (s.scorer == "manual") manual = s.score;
    else if (s.scorer.rfind("llm", 0) == 0) llm = s.score;
    else other = s.score;
  }
  return manual >= 0 ? manual : llm >= 0 ? llm : other;
}

QVector<std::array<double, 5>> intervalScoreMix(const core::FeaturePage& page) {
  QVector<std::array<double, 5>> mix;
  for (const auto& interval : page.intervals) {
    std::array<double, 5> m{0, 0, 0, 0, 0};
    for (const auto& e : interval.examples) {
      const int s = preferredScore(e);
      m[s >= 0 && s <= 3 ? s : 4] += 1.0;
    }
    const double n = interval.examples.size();
    if (n > 0) {
      for (auto& v : m) v /= n;
    } else {
      m[4] = 1.0;
    }
    mix.push_back(m);
  }
  return mix;
}

QColor ActivationHistogram::scoreColor(int score) {
  switch (score) {
    case 3: return QColor(26, 150, 65);
    case 2: return QColor(166, 217, 106);
    case 1: return QColor(253, 174, 97);
    case 0: return QColor(215, 25, 28);
    default: return QColor(190, 190, 190);
  }
}

ActivationHistogram::ActivationHistogram(QCustomPlot* plot) : QObject(plot), plot_(plot) {
  plot_->setObjectName("activation_histogram");
  static const char* names[5] = {"0 irrelevant", "1 context or vague", "2 loosely related", "3 clean match", "unscored"};
  // Stacked from the bottom: 3, 2, 1, 0, unscored.
  const int order[5] = {3, 2, 1, 0, 4};
  QCPBars* below = nullptr;
  for (int k : order) {
    auto* bars = new QCPBars(plot_->xAxis, plot_->yAxis);
    bars->setName(names[k]);
    bars->setPen(Qt::NoPen);
    bars->setBrush(scoreColor(k));
    bars->setWidthType(QCPBars::wtPlotCoords);
    if (below) bars->moveAbove(below);
    below = bars;
    bars_[k] = bars;
  }
  plot_->xAxis->setLabel(tr("activation"));
  plot_->yAxis->setLabel(tr("count"));
  // The legend in one row under the axes: 3, 2, 1, 0, unscored (the stacking order).
  plot_->legend->setVisible(true);
  plot_->legend->setFont(QFont(plot_->font().family(), 8));
  plot_->legend->setBorderPen(Qt::NoPen);
  plot_->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
  plot_->legend->setWrap(5);
  plot_->axisRect()->insetLayout()->take(plot_->legend);
  plot_->plotLayout()->addElement(1, 0, plot_->legend);
  plot_->plotLayout()->setRowStretchFactor(1, 0.001);
  plot_->legend->setMargins(QMargins(2, 0, 2, 2));
  connect(plot_, &QCustomPlot::mousePress, this, [this](QMouseEvent* event) {
    if (event->button() != Qt::LeftButton) return;
    const double x = plot_->xAxis->pixelToCoord(event->position().x());
    const int k = intervalAt(x);
    if (k >= 0) {
      setSelectedInterval(k);
      Q_EMIT intervalClicked(k);
    }
  });
}

int ActivationHistogram::intervalAt(double activation) const {
  for (int k = 0; k < intervals_.size(); ++k)
    if (activation > intervals_[k].first && activation <= intervals_[k].second) return k;
  return -1;
}

void ActivationHistogram::setSelectedInterval(int interval) {
  selected_ = interval;
  for (int i = 0; i < plot_->itemCount(); ++i) {
    auto* rect = qobject_cast<QCPItemRect*>(plot_->item(i));
    if (!rect) continue;
    rect->setVisible(rect->property("interval").toInt() == interval);
  }
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void ActivationHistogram::setPage(const core::FeaturePage& page) {
  plot_->clearItems();
  intervals_.clear();
  for (const auto& i : page.intervals) intervals_.push_back({i.lo, i.hi});
  const auto mix = intervalScoreMix(page);
  const auto& h = page.histogram;
  const int n = static_cast<int>(h.counts.size());
  const double width = n > 0 ? (h.hi - h.lo) / n : 1.0;
  std::array<QVector<double>, 5> values;
  QVector<double> keys;
  double top = 1;
  for (int b = 0; b < n; ++b) {
    const double center = h.lo + (b + 0.5) * width;
    keys.push_back(center);
    const int k = intervalAt(center);
    const double count = static_cast<double>(h.counts[b]);
    top = std::max(top, count);
    for (int s = 0; s < 5; ++s) values[s].push_back(k >= 0 ? count * mix[k][s] : (s == 4 ? count : 0.0));
  }
  for (int s = 0; s < 5; ++s) {
    bars_[s]->setWidth(width * 0.92);
    bars_[s]->setData(keys, values[s], true);
  }
  // Interval boundaries and the (hidden until clicked) selection band.
  for (int k = 0; k < intervals_.size(); ++k) {
    auto* line = new QCPItemStraightLine(plot_);
    line->point1->setCoords(intervals_[k].first, 0);
    line->point2->setCoords(intervals_[k].first, 1);
    line->setPen(QPen(QColor(90, 90, 90, 150), 1, Qt::DashLine));
    auto* band = new QCPItemRect(plot_);
    band->topLeft->setCoords(intervals_[k].first, top * 1.08);
    band->bottomRight->setCoords(intervals_[k].second, 0);
    band->setPen(Qt::NoPen);
    band->setBrush(QColor(30, 90, 200, 40));
    band->setProperty("interval", k);
    band->setVisible(k == selected_);
    band->setLayer("background");
  }
  plot_->xAxis->setRange(0, std::max(h.hi, 1e-6) * 1.02);
  plot_->yAxis->setRange(0, top * 1.08);
  plot_->replot();
}

}  // namespace monoscope::ui
