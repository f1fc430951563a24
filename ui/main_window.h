#pragma once
// The main window: wires the panels together (feature list, feature page, map, prompt
// inspector, steering, jobs) as dockable panels, with menus, keyboard navigation, recent files
// and persistent settings and layout.
#include <QHash>
#include <QMainWindow>
#include <QVector>

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

// A dictionary of the open model's workspace, with the feature database built from it (if one
// was opened).
struct WorkspaceDictionary {
  QString sae_dir, database;
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
  // The open model's dictionaries: switching between them keeps the model loaded.
  const QVector<WorkspaceDictionary>& dictionaries() const { return dictionaries_; }
  QMenu* dictionaryMenu() const { return dictionary_menu_; }
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
  void rebuildDictionaryMenu();
  // Records a dictionary (and its database) in the workspace and saves the list.
  void rememberDictionary(const QString& sae_dir, const QString& database);
  void updateTitle();
  void openModelDialog();
  void openSaeDialog();
  void openTranscoderSetDialog();
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
  QMenu* dictionary_menu_ = nullptr;
  QVector<WorkspaceDictionary> dictionaries_;
  QString open_dictionary_;  // the dictionary the worker last reported open
  QStringList pending_set_layers_;  // a transcoder set being opened: its layers, added once one loads
  QString workspace_model_;  // the model the dictionaries belong to
  QHash<QString, QString> pending_db_;  // dictionaries being opened -> the database opened with each
  QAction* back_ = nullptr;
  QAction* forward_ = nullptr;
  QLabel* engine_status_;
  QByteArray default_state_;
  bool sized_ = false;
};

}  // namespace monoscope::ui
