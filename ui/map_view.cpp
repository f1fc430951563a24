#include "map_view.h"

#include <QElapsedTimer>
#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QTimer>
#include <QToolTip>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

namespace monoscope::ui {

namespace {
constexpr int kGridCells = 256;
// A perceptual ramp (dark blue -> teal -> yellow), sampled at 5 stops.
const QColor kRamp[5] = {QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140), QColor(94, 201, 98),
                         QColor(253, 231, 37)};
}

MapView::MapView(QWidget* parent) : QWidget(parent), layers_(std::make_unique<MapLayers>()) {
  setMouseTracking(false);
  setFocusPolicy(Qt::ClickFocus);
  setMinimumSize(200, 150);
}

QColor MapView::densityColor(double log10_density, double lo, double hi) {
  const double t = hi > lo ? std::clamp((log10_density - lo) / (hi - lo), 0.0, 1.0) : 0.5;
  const double f = t * 4.0;
  const int i = std::min(3, static_cast<int>(f));
  const double u = f - i;
  const QColor a = kRamp[i], b = kRamp[i + 1];
  return QColor::fromRgbF(a.redF() + (b.redF() - a.redF()) * u, a.greenF() + (b.greenF() - a.greenF()) * u,
                          a.blueF() + (b.blueF() - a.blueF()) * u);
}

void MapView::setLayers(const core::FeatureDb* db) {
  setPoints({});
  layers_->setDatabase(db && db->mapLayout().present ? db : nullptr);
  if (!layers_->active()) return;
  const auto& l = layers_->layout();
  min_x_ = l.min_x, max_x_ = l.max_x, min_y_ = l.min_y, max_y_ = l.max_y;
  log_lo_ = l.log_lo, log_hi_ = l.log_hi;
  learnPositions();
  resetView();
}

void MapView::learnPositions() {
  known_.clear();
  const core::FeatureDb* db = layers_->database();
  if (!db) return;
  auto learn = [&](qint64 id) {
    if (id < 0 || known_.count(id)) return;
    if (const auto p = db->mapPoint(id)) known_.emplace(id, *p);
  };
  learn(selected_);
  for (const auto id : neighbours_) learn(id);
  // A concept prompt lights a few hundred features; their positions are point reads.
  for (std::size_t i = 0; i < std::min<std::size_t>(lit_.size(), 5000); ++i) learn(lit_[i].first);
}

std::optional<core::MapPoint> MapView::pointOf(qint64 feature) const {
  if (layers_->active()) {
    const auto it = known_.find(feature);
    return it == known_.end() ? std::nullopt : std::optional<core::MapPoint>(it->second);
  }
  const auto it = index_of_.find(feature);
  return it == index_of_.end() ? std::nullopt : std::optional<core::MapPoint>(points_[it->second]);
}

void MapView::setPoints(std::vector<core::MapPoint> points) {
  layers_->setDatabase(nullptr);
  known_.clear();
  points_ = std::move(points);
  index_of_.clear();
  colors_.clear();
  if (!points_.empty()) {
    min_x_ = max_x_ = points_[0].x;
    min_y_ = max_y_ = points_[0].y;
  }
  log_lo_ = 0;
  log_hi_ = -12;
  for (std::size_t i = 0; i < points_.size(); ++i) {
    const auto& p = points_[i];
    index_of_[p.id] = i;
    min_x_ = std::min(min_x_, p.x);
    max_x_ = std::max(max_x_, p.x);
    min_y_ = std::min(min_y_, p.y);
    max_y_ = std::max(max_y_, p.y);
    if (p.density > 0) {
      log_lo_ = std::min(log_lo_, std::log10(p.density));
      log_hi_ = std::max(log_hi_, std::log10(p.density));
    }
  }
  if (log_hi_ < log_lo_) log_lo_ = log_hi_ = 0;
  colors_.reserve(points_.size());
  for (const auto& p : points_)
    colors_.push_back(p.density > 0 ? densityColor(std::log10(p.density), log_lo_, log_hi_).rgb() : qRgb(170, 170, 170));
  buildGrid();
  resetView();
}

void MapView::buildGrid() {
  grid_n_ = kGridCells;
  grid_.assign(static_cast<std::size_t>(grid_n_) * grid_n_, {});
  const float w = std::max(max_x_ - min_x_, 1e-6f), h = std::max(max_y_ - min_y_, 1e-6f);
  for (std::size_t i = 0; i < points_.size(); ++i) {
    const int gx = std::clamp(static_cast<int>((points_[i].x - min_x_) / w * grid_n_), 0, grid_n_ - 1);
    const int gy = std::clamp(static_cast<int>((points_[i].y - min_y_) / h * grid_n_), 0, grid_n_ - 1);
    grid_[static_cast<std::size_t>(gy) * grid_n_ + gx].push_back(static_cast<std::uint32_t>(i));
  }
}

void MapView::resetView() {
  cx_ = 0.5 * (min_x_ + max_x_);
  cy_ = 0.5 * (min_y_ + max_y_);
  const double w = std::max(max_x_ - min_x_, 1e-6f), h = std::max(max_y_ - min_y_, 1e-6f);
  scale_ = 0.92 * std::min(std::max(width(), 50) / w, std::max(height(), 50) / h);
  update();
}

QPointF MapView::toPixel(float x, float y) const {
  return QPointF((x - cx_) * scale_ + width() * 0.5, -(y - cy_) * scale_ + height() * 0.5);
}

void MapView::zoomAt(const QPointF& pixel, double factor) {
  // Keep the data point under `pixel` fixed.
  const double dx = cx_ + (pixel.x() - width() * 0.5) / scale_;
  const double dy = cy_ - (pixel.y() - height() * 0.5) / scale_;
  scale_ = std::clamp(scale_ * factor, 1e-3, 1e7);
  cx_ = dx - (pixel.x() - width() * 0.5) / scale_;
  cy_ = dy + (pixel.y() - height() * 0.5) / scale_;
  update();
}

void MapView::panBy(const QPointF& pixels) {
  cx_ -= pixels.x() / scale_;
  cy_ += pixels.y() / scale_;
  update();
}

void MapView::setSelection(qint64 feature, const std::vector<qint64>& neighbours) {
  selected_ = feature;
  neighbours_ = neighbours;
  learnPositions();
  update();
}

void MapView::setLit(const std::vector<std::pair<qint64, float>>& lit) {
  lit_ = lit;
  learnPositions();
  update();
}

qint64 MapView::featureAt(const QPointF& pixel, double radius_px) const {
  const double dx = cx_ + (pixel.x() - width() * 0.5) / scale_;
  const double dy = cy_ - (pixel.y() - height() * 0.5) / scale_;
  const double r = radius_px / scale_;
  if (layers_->active()) {
    // Only where single points are drawn: a density bin stands for many features.
    if (!drew_points_) return -1;
    const auto& l = layers_->layout();
    const double w = std::max(double(l.max_x) - l.min_x, 1e-6), h = std::max(double(l.max_y) - l.min_y, 1e-6);
    auto cell = [&](double v, double lo, double span) { return std::clamp(static_cast<int>(std::floor((v - lo) / span * l.cells)), 0, l.cells - 1); };
    double best = r * r;
    qint64 found = -1;
    for (int gy = cell(dy - r, l.min_y, h); gy <= cell(dy + r, l.min_y, h); ++gy)
      for (int gx = cell(dx - r, l.min_x, w); gx <= cell(dx + r, l.min_x, w); ++gx) {
        const auto* pts = layers_->cell(static_cast<std::int64_t>(gy) * l.cells + gx, true);
        if (!pts) continue;
        for (const auto& p : *pts) {
          const double ex = p.x - dx, ey = p.y - dy, d = ex * ex + ey * ey;
          if (d <= best) best = d, found = p.id;
        }
      }
    return found;
  }
  if (points_.empty() || grid_n_ == 0) return -1;
  const float w = std::max(max_x_ - min_x_, 1e-6f), h = std::max(max_y_ - min_y_, 1e-6f);
  auto cell = [&](double v, float lo, float span) {
    return std::clamp(static_cast<int>((v - lo) / span * grid_n_), 0, grid_n_ - 1);
  };
  const int x0 = cell(dx - r, min_x_, w), x1 = cell(dx + r, min_x_, w);
  const int y0 = cell(dy - r, min_y_, h), y1 = cell(dy + r, min_y_, h);
  double best = r * r;
  qint64 found = -1;
  for (int gy = y0; gy <= y1; ++gy)
    for (int gx = x0; gx <= x1; ++gx)
      for (const auto i : grid_[static_cast<std::size_t>(gy) * grid_n_ + gx]) {
        const double ex = points_[i].x - dx, ey = points_[i].y - dy;
        const double d = ex * ex + ey * ey;
        if (d <= best) {
          best = d;
          found = points_[i].id;
        }
      }
  return found;
}

void MapView::paintEvent(QPaintEvent*) {
  const qreal dpr = devicePixelRatioF();
  const QSize size(std::max(1, int(width() * dpr)), std::max(1, int(height() * dpr)));
  if (frame_.size() != size) frame_ = QImage(size, QImage::Format_RGB32);
  frame_.fill(palette().color(QPalette::Base).rgb());
  if (layers_->active()) {
    paintLayers();
  } else {
    // Rasterise every point as a 2x2 device-pixel square.
    const int W = size.width(), H = size.height();
    const double s = scale_ * dpr, ox = W * 0.5 - cx_ * s, oy = H * 0.5 + cy_ * s;
    auto* bits = reinterpret_cast<QRgb*>(frame_.bits());
    const int stride = frame_.bytesPerLine() / 4;
    const int dot = scale_ > 40 ? 3 : 2;
    for (std::size_t i = 0; i < points_.size(); ++i) {
      const int px = static_cast<int>(points_[i].x * s + ox);
      const int py = static_cast<int>(oy - points_[i].y * s);
      if (px < 0 || py < 0 || px + dot > W || py + dot > H) continue;
      QRgb* row = bits + static_cast<std::ptrdiff_t>(py) * stride + px;
      for (int r = 0; r < dot; ++r, row += stride)
        for (int c = 0; c < dot; ++c) row[c] = colors_[i];
    }
  }
  QPainter p(this);
  p.drawImage(QRectF(0, 0, width(), height()), frame_);
  p.setRenderHint(QPainter::Antialiasing);
  for (const auto& [id, strength] : lit_) {
    const auto pt = pointOf(id);
    if (!pt) continue;
    const QPointF c = toPixel(pt->x, pt->y);
    const double radius = 3.0 + 6.0 * std::clamp(strength, 0.0f, 1.0f);
    p.setPen(QPen(QColor(180, 20, 20), 1));
    p.setBrush(QColor(255, 60, 30, 170));
    p.drawEllipse(c, radius, radius);
  }
  p.setBrush(Qt::NoBrush);
  for (const auto id : neighbours_) {
    const auto pt = pointOf(id);
    if (!pt) continue;
    p.setPen(QPen(QColor(255, 140, 0), 2));
    p.drawEllipse(toPixel(pt->x, pt->y), 5, 5);
  }
  if (const auto pt = pointOf(selected_)) {
    const QPointF c = toPixel(pt->x, pt->y);
    p.setPen(QPen(QColor(220, 0, 60), 2.5));
    p.drawEllipse(c, 8, 8);
    p.drawLine(c + QPointF(-13, 0), c + QPointF(-9, 0));
    p.drawLine(c + QPointF(9, 0), c + QPointF(13, 0));
  }
  drawLegend(p);
}

void MapView::paintLayers() {
  const auto& l = layers_->layout();
  const int W = frame_.width(), H = frame_.height();
  const double s = scale_ * devicePixelRatioF(), ox = W * 0.5 - cx_ * s, oy = H * 0.5 + cy_ * s;
  const double w = std::max(double(l.max_x) - l.min_x, 1e-6), h = std::max(double(l.max_y) - l.min_y, 1e-6);
  // The visible data rectangle, and the grid indices it covers (n a side).
  const double x0 = -ox / s, x1 = (W - ox) / s, y0 = (oy - H) / s, y1 = oy / s;
  if (x1 < l.min_x || x0 > l.max_x || y1 < l.min_y || y0 > l.max_y) return;
  auto span = [](double a, double b, double lo, double extent, int n) {
    return std::make_pair(std::clamp(static_cast<int>(std::floor((a - lo) / extent * n)), 0, n - 1),
                          std::clamp(static_cast<int>(std::floor((b - lo) / extent * n)), 0, n - 1));
  };
  const auto [cx0, cx1] = span(x0, x1, l.min_x, w, l.cells);
  const auto [cy0, cy1] = span(y0, y1, l.min_y, h, l.cells);
  const std::int64_t in_view = l.pointsIn(cx0, cy0, cx1 + 1, cy1 + 1);
  // Reads are budgeted: what is not read in this frame is drawn in the next ones.
  QElapsedTimer clock;
  clock.start();
  constexpr qint64 kReadBudgetNs = 6'000'000;
  auto may_read = [&] { return clock.nsecsElapsed() < kReadBudgetNs; };
  bool missing = false;
  drew_points_ = in_view <= layers_->pointBudget();
  if (drew_points_) {
    auto* bits = reinterpret_cast<QRgb*>(frame_.bits());
    const int stride = frame_.bytesPerLine() / 4;
    const int dot = in_view < 20000 ? 3 : 2;
    for (int gy = cy0; gy <= cy1; ++gy)
      for (int gx = cx0; gx <= cx1; ++gx) {
        const std::int64_t index = static_cast<std::int64_t>(gy) * l.cells + gx;
        if (l.pointsIn(gx, gy, gx + 1, gy + 1) == 0) continue;
        const auto* pts = layers_->cell(index, may_read());
        if (!pts) {
          missing = true;
          continue;
        }
        const auto& colors = *layers_->cellColors(index);
        for (std::size_t i = 0; i < pts->size(); ++i) {
          const int px = static_cast<int>((*pts)[i].x * s + ox);
          const int py = static_cast<int>(oy - (*pts)[i].y * s);
          if (px < 0 || py < 0 || px + dot > W || py + dot > H) continue;
          QRgb* row = bits + static_cast<std::ptrdiff_t>(py) * stride + px;
          for (int r = 0; r < dot; ++r, row += stride)
            for (int c = 0; c < dot; ++c) row[c] = colors[i];
        }
      }
  } else {
    // The level whose bins are about a device pixel; each tile drawn scaled, nearest bin.
    const double bin_px = s * w / core::kMapTileBins;
    const int level = std::clamp(static_cast<int>(std::ceil(std::log2(std::max(bin_px / 1.5, 1.0)))), 0, l.levels - 1);
    const int tiles = 1 << level;
    const auto [tx0, tx1] = span(x0, x1, l.min_x, w, tiles);
    const auto [ty0, ty1] = span(y0, y1, l.min_y, h, tiles);
    const double tw = w / tiles, th = h / tiles;
    QPainter p(&frame_);
    for (int ty = ty0; ty <= ty1; ++ty)
      for (int tx = tx0; tx <= tx1; ++tx) {
        const QRectF target(ox + (l.min_x + tx * tw) * s, oy - (l.min_y + (ty + 1) * th) * s, tw * s, th * s);
        const QImage* image = layers_->tile(level, tx, ty, may_read());
        if (image) {
          if (!image->isNull()) p.drawImage(target, *image);
          continue;
        }
        missing = true;
        // Not read yet: the part of the nearest cached coarser tile that covers it.
        for (int up = 1; up <= level; ++up) {
          const QImage* parent = layers_->tile(level - up, tx >> up, ty >> up, false);
          if (!parent) continue;
          if (parent->isNull()) break;
          const int part = core::kMapTileBins >> up, mask = (1 << up) - 1;
          const QRectF source((tx & mask) * part, (mask - (ty & mask)) * part, part, part);
          p.drawImage(target, *parent, source);
          break;
        }
      }
  }
  if (missing && !refill_pending_) {
    refill_pending_ = true;
    QTimer::singleShot(0, this, [this]() {
      refill_pending_ = false;
      update();
    });
  }
}

void MapView::drawLegend(QPainter& p) const {
  if (points_.empty() && !layers_->active()) {
    p.setPen(palette().color(QPalette::PlaceholderText));
    p.drawText(rect(), Qt::AlignCenter, tr("No map: the database has no UMAP coordinates."));
    return;
  }
  const int w = 120, h = 10, x = width() - w - 12, y = height() - h - 22;
  for (int i = 0; i < w; ++i) {
    p.setPen(densityColor(log_lo_ + (log_hi_ - log_lo_) * i / (w - 1.0), log_lo_, log_hi_));
    p.drawLine(x + i, y, x + i, y + h);
  }
  p.setPen(palette().color(QPalette::Text));
  QFont f = p.font();
  f.setPointSizeF(f.pointSizeF() * 0.85);
  p.setFont(f);
  p.drawText(QRect(x - 40, y + h + 1, w + 80, 16), Qt::AlignHCenter,
             tr("log10 density %1 .. %2").arg(log_lo_, 0, 'f', 1).arg(log_hi_, 0, 'f', 1));
  if (layers_->active()) {
    const QString mode = drew_points_ ? tr("%L1 features").arg(layers_->layout().points)
                                      : tr("%L1 features, binned").arg(layers_->layout().points);
    p.drawText(QRect(8, height() - 20, width() - w - 40, 16), Qt::AlignLeft | Qt::AlignVCenter, mode);
  }
}

void MapView::wheelEvent(QWheelEvent* event) {
  const double steps = event->angleDelta().y() / 120.0;
  zoomAt(event->position(), std::pow(1.25, steps));
  event->accept();
}

void MapView::mousePressEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton) {
    dragging_ = true;
    press_pos_ = last_pos_ = event->position();
  }
}

void MapView::mouseMoveEvent(QMouseEvent* event) {
  if (!dragging_) return;
  panBy(event->position() - last_pos_);
  last_pos_ = event->position();
}

void MapView::mouseReleaseEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton) return;
  dragging_ = false;
  if ((event->position() - press_pos_).manhattanLength() < 4) {
    const qint64 f = featureAt(event->position());
    if (f >= 0) Q_EMIT featureClicked(f);
  }
}

void MapView::mouseDoubleClickEvent(QMouseEvent*) { resetView(); }

bool MapView::event(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(event);
    const qint64 f = featureAt(help->pos());
    if (f < 0) {
      if (layers_->active() && !drew_points_) {
        QToolTip::showText(help->globalPos(), tr("Zoom in to pick single features here"), this);
        return true;
      }
      QToolTip::hideText();
      return true;
    }
    core::MapPoint p;
    p.id = f;
    if (layers_->active()) {
      if (const auto* db = layers_->database())
        if (const auto found = db->mapPoint(f)) p = *found;
    } else {
      p = points_[index_of_.at(f)];
    }
    QString text = tr("<b>Feature %1</b><br>density %2").arg(f).arg(p.density, 0, 'e', 2);
    if (labeler_) text += "<br>" + labeler_(f).toHtmlEscaped();
    QToolTip::showText(help->globalPos(), text, this);
    return true;
  }
  return QWidget::event(event);
}

}  // namespace monoscope::ui
