#include "token_text_view.h"

#include <QFontMetrics>
#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>

#include "api/training.h"

namespace monoscope::ui {

namespace {
constexpr int kPadX = 1, kPadY = 2, kLineGap = 2;
const QChar kReturnSign(0x21B5);  // shown for a newline
const QChar kTabSign(0x2192);     // shown for a tab
}

TokenTextView::TokenTextView(QWidget* parent) : QWidget(parent) {
  setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Preferred);
  setMouseTracking(false);
}

QString TokenTextView::visible(const QString& token) {
  QString out;
  out.reserve(token.size() + 1);
  for (const QChar c : token) {
    if (c == '\n') out += kReturnSign;
    else if (c == '\t') out += kTabSign;
    else if (c == '\r') out += QChar(0x240D);
    else if (c.category() == QChar::Other_Control) out += QChar(0xFFFD);
    else out += c;
  }
  return out;
}

QColor TokenTextView::highlight(float value, float scale) {
  if (!(scale > 0.0f) || !(value > 0.0f)) return QColor(0, 0, 0, 0);
  const float t = std::clamp(value / scale, 0.0f, 1.0f);
  // Warm orange at full activation; alpha carries the intensity.
  QColor c(255, 140, 0);
  c.setAlphaF(0.12 + 0.78 * t);
  return c;
}

void TokenTextView::measure() {
  const QFontMetrics fm(font());
  widths_.resize(cells_.size());
  for (int i = 0; i < cells_.size(); ++i) widths_[i] = std::max(fm.horizontalAdvance(visible(cells_[i].text)) + 2 * kPadX, 4);
  cached_width_ = -1;
}

void TokenTextView::setTokens(QVector<TokenCell> cells, float scale, int center) {
  cells_ = std::move(cells);
  measure();
  scale_ = scale;
  center_ = center;
  selected_ = -1;
  layout(width() > 0 ? width() : 600, &rects_);
  updateGeometry();
  update();
}

void TokenTextView::setValues(const std::vector<float>& values, float scale) {
  for (int i = 0; i < cells_.size() && i < static_cast<int>(values.size()); ++i) cells_[i].value = values[i];
  scale_ = scale;
  update();
}

void TokenTextView::setSelected(int token) {
  selected_ = token;
  update();
}

QString TokenTextView::displayText() const {
  QString s;
  for (const auto& c : cells_) s += c.text;
  return s;
}

QVector<QPair<int, int>> TokenTextView::displaySpans() const {
  QVector<QPair<int, int>> spans;
  int at = 0;
  for (const auto& c : cells_) {
    spans.push_back({at, at + static_cast<int>(c.text.size())});
    at += c.text.size();
  }
  return spans;
}

int TokenTextView::layout(int width, QVector<QRect>* rects) const {
  const QFontMetrics fm(font());
  const int line_h = fm.height() + 2 * kPadY;
  int x = 0, y = 0;
  rects->clear();
  rects->reserve(cells_.size());
  for (int i = 0; i < cells_.size(); ++i) {
    const auto& c = cells_[i];
    const int w = i < widths_.size() ? widths_[i] : 4;
    if (x > 0 && x + w > width) {
      x = 0;
      y += line_h + kLineGap;
    }
    rects->push_back(QRect(x, y, w, line_h));
    x += w;
    if (c.text.contains('\n')) {
      x = 0;
      y += line_h + kLineGap;
    }
  }
  int height = line_h;
  for (const auto& r : *rects) height = std::max(height, r.y() + r.height());
  return height;
}

int TokenTextView::heightForWidth(int width) const {
  if (width != cached_width_) {
    QVector<QRect> r;
    cached_height_ = layout(width, &r) + 2;
    cached_width_ = width;
  }
  return cached_height_;
}

QSize TokenTextView::sizeHint() const { return QSize(400, heightForWidth(width() > 0 ? width() : 400)); }
QSize TokenTextView::minimumSizeHint() const { return QSize(80, QFontMetrics(font()).height() + 2 * kPadY); }

void TokenTextView::resizeEvent(QResizeEvent* event) {
  QWidget::resizeEvent(event);
  const int h = layout(width(), &rects_) + 2;
  if (h != height()) updateGeometry();
}

QRect TokenTextView::tokenRect(int token) const {
  return token >= 0 && token < rects_.size() ? rects_[token] : QRect();
}

int TokenTextView::tokenAt(const QPoint& pos) const {
  for (int i = 0; i < rects_.size(); ++i)
    if (rects_[i].contains(pos)) return i;
  return -1;
}

void TokenTextView::paintEvent(QPaintEvent*) {
  QPainter p(this);
  const QFontMetrics fm(font());
  const QColor text_color = palette().color(QPalette::Text);
  for (int i = 0; i < cells_.size() && i < rects_.size(); ++i) {
    const QRect r = rects_[i];
    const QColor bg = highlight(cells_[i].value, scale_);
    if (bg.alpha() > 0) p.fillRect(r, bg);
    const QString shown = visible(cells_[i].text);
    const bool special = shown != cells_[i].text;
    p.setPen(special ? QColor(130, 130, 130) : text_color);
    p.drawText(r.adjusted(kPadX, kPadY, 0, 0), Qt::AlignLeft | Qt::AlignTop | Qt::TextDontClip, shown);
    if (cells_[i].sink != 0) {  // flagged: its features are artifacts of position
      p.setPen(QPen(QColor(130, 130, 130), 1, Qt::DashLine));
      p.drawLine(r.left() + 1, r.bottom() - 1, r.right() - 1, r.bottom() - 1);
    }
    if (i == center_ || i == selected_) {
      p.setPen(QPen(i == center_ ? QColor(200, 60, 0) : QColor(30, 90, 200), 1.5));
      p.setBrush(Qt::NoBrush);
      p.drawRect(QRectF(r).adjusted(0.75, 0.75, -0.75, -0.75));
    }
  }
}

bool TokenTextView::event(QEvent* event) {
  if (event->type() == QEvent::FontChange) {
    measure();
    layout(width(), &rects_);
    updateGeometry();
  }
  if (event->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(event);
    const int t = tokenAt(help->pos());
    if (t < 0) {
      QToolTip::hideText();
      event->ignore();
      return true;
    }
    const auto& c = cells_[t];
    QString escaped;
    for (const QChar ch : c.text) {
      if (ch == '\n') escaped += "\\n";
      else if (ch == '\t') escaped += "\\t";
      else escaped += ch;
    }
    QString tip = tr("\"%1\"").arg(escaped.toHtmlEscaped());
    if (c.id >= 0) tip += tr("  id %1").arg(c.id);
    tip += tr("<br>activation <b>%1</b>").arg(c.value, 0, 'f', 3);
    if (c.byte_end > c.byte_start) tip += tr("<br>bytes %1-%2").arg(c.byte_start).arg(c.byte_end);
    if (c.sink == 1)
      tip += tr("<br><i>first position of its window: an attention sink with a massive activation;<br>"
                "left out of contrastive search and, by default, of the database's statistics</i>");
    else if (c.sink != 0)
      tip += tr("<br><i>a residual norm over %1 times its window's median: an attention sink;<br>"
                "left out of contrastive search and, by default, of the database's statistics</i>").arg(core::kMassiveRowFactor);
    QToolTip::showText(help->globalPos(), tip, this, tokenRect(t));
    return true;
  }
  return QWidget::event(event);
}

void TokenTextView::mousePressEvent(QMouseEvent* event) {
  const int t = tokenAt(event->position().toPoint());
  if (t >= 0) Q_EMIT tokenClicked(t);
  QWidget::mousePressEvent(event);
}

}  // namespace monoscope::ui
