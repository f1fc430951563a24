#pragma once
// The map panel: the dictionary's UMAP with the selected feature and its neighbours, and a
// concept prompt that lights up the features firing on it.
#include <QWidget>
#include <cstdint>

class QLabel;
class QLineEdit;
class QPushButton;

namespace monoscope::ui {

class MapView;
class Session;

class MapPanel : public QWidget {
  Q_OBJECT
 public:
  explicit MapPanel(Session* session, QWidget* parent = nullptr);
  // Map points held in memory at most; a larger map is drawn from the database's layers.
  static constexpr std::int64_t kPointsInMemory = 250000;
  QSize sizeHint() const override { return QSize(420, 320); }  // the main window's first layout
  MapView* view() const { return view_; }
  QLineEdit* conceptEdit() const { return concept_; }
  void lightUp();  // encodes the concept prompt on the inference worker

 Q_SIGNALS:
  void lit(int features);  // after a light-up finished

 private:
  void reload();
  void follow(qint64 feature);

  Session* session_;
  MapView* view_;
  QLineEdit* concept_;
  QPushButton* light_;
  QLabel* status_;
};

}  // namespace monoscope::ui
