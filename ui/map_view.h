#pragma once
// The map: the UMAP of the whole dictionary as a zoomable, pannable scatter coloured by log
// density. Points are rasterised straight into an image (a 100,000-point frame is a few
// milliseconds); a grid index finds the point under the cursor. A dictionary of millions of
// features is drawn from the database's map layers instead (MapLayers: density tiles zoomed
// out, points zoomed in), never held whole. The selected feature and its neighbours are
// outlined; "lit" features (those a concept prompt activates) are drawn large.
#include <QImage>
#include <QWidget>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "api/feature_db.h"
#include "map_layers.h"

namespace monoscope::ui {

class MapView : public QWidget {
  Q_OBJECT
 public:
  explicit MapView(QWidget* parent = nullptr);

  void setPoints(std::vector<core::MapPoint> points);
  const std::vector<core::MapPoint>& points() const { return points_; }
  // Draws the database's map layers (it must have them, FeatureDb::mapLayout().present) instead
  // of points held here; the database must outlive the view or be replaced first.
  void setLayers(const core::FeatureDb* db);
  bool layered() const { return layers_->active(); }
  // Whether the last frame drew single points (not density tiles).
  bool drewPoints() const { return drew_points_; }
  // Whether a frame left tiles or cells to read in the next ones.
  bool refillPending() const { return refill_pending_; }
  const MapLayers& layers() const { return *layers_; }
  // Points in view below which single points are drawn instead of density tiles.
  void setPointBudget(std::int64_t points) {
    layers_->setPointBudget(points);
    update();
  }
  void setSelection(qint64 feature, const std::vector<qint64>& neighbours);
  // Features to light up with a strength in (0, 1] each (empty clears).
  void setLit(const std::vector<std::pair<qint64, float>>& lit);
  const std::vector<std::pair<qint64, float>>& lit() const { return lit_; }
  void setLabeler(std::function<QString(qint64)> labeler) { labeler_ = std::move(labeler); }

  void resetView();
  void zoomAt(const QPointF& pixel, double factor);
  void panBy(const QPointF& pixels);
  qint64 featureAt(const QPointF& pixel, double radius_px = 6.0) const;
  QPointF toPixel(float x, float y) const;

  static QColor densityColor(double log10_density, double lo, double hi);

  QSize sizeHint() const override { return QSize(500, 400); }

 Q_SIGNALS:
  void featureClicked(qint64 feature);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;
  bool event(QEvent* event) override;

 private:
  void buildGrid();
  void drawLegend(QPainter& p) const;
  void paintLayers();
  std::optional<core::MapPoint> pointOf(qint64 feature) const;
  void learnPositions();  // positions of the marked features, from the database (layers)

  std::vector<core::MapPoint> points_;
  std::vector<QRgb> colors_;
  std::unordered_map<qint64, std::size_t> index_of_;
  float min_x_ = 0, max_x_ = 1, min_y_ = 0, max_y_ = 1;
  double log_lo_ = -6, log_hi_ = 0;
  // Grid over the data bounds: cell -> point indices.
  int grid_n_ = 0;
  std::vector<std::vector<std::uint32_t>> grid_;
  // View: pixel = (data - center) * scale + widget center (y flipped).
  double cx_ = 0.5, cy_ = 0.5, scale_ = 1.0;
  bool dragging_ = false;
  QPointF press_pos_, last_pos_;
  qint64 selected_ = -1;
  std::vector<qint64> neighbours_;
  std::vector<std::pair<qint64, float>> lit_;
  QImage frame_;
  std::function<QString(qint64)> labeler_;
  std::unique_ptr<MapLayers> layers_;
  std::unordered_map<qint64, core::MapPoint> known_;  // marked features' positions (layers)
  bool drew_points_ = true;
  bool refill_pending_ = false;
};

}  // namespace monoscope::ui
