#pragma once
// The main window: wires the panels together (feature list, feature page, map, prompt
// inspector, steering, jobs) as dockable panels, with menus, keyboard navigation, recent files
// and persistent settings and layout.
#include <QMainWindow>

class QAction;
class QLabel;
class QMenu;

namespace monoscope::ui {

class FeatureListPanel;
class FeaturePage;
class JobsPanel;
class MapPanel;
class PromptInspector;
class Session;
class SteeringPanel;

struct Workspace {
  QString model_dir, sae_dir, database;
};

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Opens what is given (empty entries are skipped); errors are shown as dialogs unless
  // `quiet`, and returned.
  QString openWorkspace(const Workspace& workspace, bool quiet = false);
  // Builds a feature database as a job, then opens it.
  void buildDatabase(const QString& model_dir, const QString& sae_dir, const QString& corpus, const QString& out,
                     qint64 tokens);

  Session* session() const { return session_; }
  FeatureListPanel* featureList() const { return list_; }
  FeaturePage* featurePage() const { return page_; }
  MapPanel* mapPanel() const { return map_; }
  PromptInspector* inspector() const { return inspector_; }
  SteeringPanel* steering() const { return steering_; }
  JobsPanel* jobs() const { return jobs_; }
  void showPanel(QWidget* panel);  // raises the dock holding it

 protected:
  void closeEvent(QCloseEvent* event) override;
  void showEvent(QShowEvent* event) override;

 private:
  void buildMenus();
  void addRecent(const QString& kind, const QString& path);
  void rebuildRecentMenu();
  void updateTitle();
  void openModelDialog();
  void openSaeDialog();
  void openDatabaseDialog();
  void openHubDialog();
  void goToFeatureDialog();
  void startIndexJob();
  void startScoreJob();
  void startExplainJob();
  void startTrainJob();

  Session* session_;
  FeatureListPanel* list_;
  FeaturePage* page_;
  MapPanel* map_;
  PromptInspector* inspector_;
  SteeringPanel* steering_;
  JobsPanel* jobs_;
  QMenu* recent_menu_ = nullptr;
  QAction* back_ = nullptr;
  QAction* forward_ = nullptr;
  QLabel* engine_status_;
  QByteArray default_state_;
  bool sized_ = false;
};

}  // namespace monoscope::ui
