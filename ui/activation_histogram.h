#pragma once
// A feature's activation histogram: bars over (0, max], the activation intervals marked, each
// bar coloured by the mix of specificity scores (0-3) of its interval's sampled examples, with
// a legend. Clicking a bar selects its interval.
#include <QColor>
#include <QObject>
#include <QVector>
#include <array>

#include "api/feature_db.h"

class QCustomPlot;
class QCPBars;

namespace monoscope::ui {

// The score an example counts with: a person's label first, then an LLM judge, then the rule-
// based matcher; -1 when unscored.
int preferredScore(const core::Example& example);

// Per interval, the fraction of its sampled examples with score 0..3, and unscored (index 4).
QVector<std::array<double, 5>> intervalScoreMix(const core::FeaturePage& page);

class ActivationHistogram : public QObject {
  Q_OBJECT
 public:
  explicit ActivationHistogram(QCustomPlot* plot);
  void setPage(const core::FeaturePage& page);
  void setSelectedInterval(int interval);
  int intervalAt(double activation) const;  // -1 outside (0, max]
  QCustomPlot* plot() const { return plot_; }

  static QColor scoreColor(int score);  // 0-3; 4 = unscored

 Q_SIGNALS:
  void intervalClicked(int interval);

 private:
  QCustomPlot* plot_;
  std::array<QCPBars*, 5> bars_{};
  QVector<QPair<double, double>> intervals_;
  int selected_ = -1;
};

}  // namespace monoscope::ui
