#pragma once
// The feature list dock: search as you type (explanations and top tokens), a filter (alive,
// dead, dense, labelled), sorting by clicking a column, and next/previous feature.
#include <QWidget>

class QComboBox;
class QLabel;
class QLineEdit;
class QTableView;
class QTimer;

namespace monoscope::ui {

class FeatureListModel;
class Session;

class FeatureListPanel : public QWidget {
  Q_OBJECT
 public:
  explicit FeatureListPanel(Session* session, QWidget* parent = nullptr);
  QSize sizeHint() const override { return QSize(300, 600); }  // the main window's first layout

  FeatureListModel* model() const { return model_; }
  QTableView* view() const { return view_; }
  QLineEdit* searchEdit() const { return search_; }
  void focusSearch();
  void step(int delta);  // select the next (+1) or previous (-1) feature in the list
  void applyQuery();     // runs the search now (it otherwise waits for typing to pause)

 private:
  void follow(qint64 feature);

  Session* session_;
  FeatureListModel* model_;
  QTableView* view_;
  QLineEdit* search_;
  QComboBox* filter_;
  QLabel* count_;
  QTimer* debounce_;
};

}  // namespace monoscope::ui
