#pragma once
// Token-level highlighting: a run of tokens drawn with each token's exact characters (spaces
// kept, a newline shown as a return sign and a line break, a character split over tokens whole on the first of them),
// its background intensity proportional to its activation, a tooltip with the token, its id and
// value, and the activating token outlined. Lines wrap at token boundaries.
#include <QColor>
#include <QString>
#include <QVector>
#include <QWidget>
#include <cstdint>
#include <string>
#include <vector>

namespace monoscope::ui {

struct TokenCell {
  QString text;              // the token's characters (valid UTF-8 decoded)
  std::int32_t id = -1;      // token id (-1 unknown)
  std::size_t byte_start = 0, byte_end = 0;  // span in the source text (both 0 when unknown)
  float value = 0.0f;        // activation highlighted
  // An attention sink, left out of statistics and drawn with a dashed underline (values of
  // core::EncodedText::Sink): 0 none, 1 a window's first position, 2 a row with a massive norm.
  std::uint8_t sink = 0;
};

class TokenTextView : public QWidget {
  Q_OBJECT
 public:
  explicit TokenTextView(QWidget* parent = nullptr);

  // `scale` is the activation drawn at full intensity (e.g. the feature's max activation);
  // `center` the token outlined (-1 none).
  void setTokens(QVector<TokenCell> cells, float scale, int center = -1);
  void setValues(const std::vector<float>& values, float scale);  // same tokens, new activations
  const QVector<TokenCell>& tokens() const { return cells_; }
  int center() const { return center_; }
  void setSelected(int token);  // a second outline (e.g. the token the inspector shows)

  // The displayed text and, per token, its [start, end) range in it (QString units).
  QString displayText() const;
  QVector<QPair<int, int>> displaySpans() const;
  QRect tokenRect(int token) const;  // in widget coordinates
  int tokenAt(const QPoint& pos) const;

  static QColor highlight(float value, float scale);  // background for an activation
  static QString visible(const QString& token);       // a token's characters as drawn

  bool hasHeightForWidth() const override { return true; }
  int heightForWidth(int width) const override;
  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 Q_SIGNALS:
  void tokenClicked(int token);

 protected:
  void paintEvent(QPaintEvent* event) override;
  bool event(QEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  int layout(int width, QVector<QRect>* rects) const;  // returns the height

  void measure();  // token widths for the current font (shaping is the expensive part)

  QVector<TokenCell> cells_;
  QVector<QRect> rects_;
  QVector<int> widths_;
  mutable int cached_width_ = -1, cached_height_ = 0;
  float scale_ = 1.0f;
  int center_ = -1, selected_ = -1;
};

}  // namespace monoscope::ui
