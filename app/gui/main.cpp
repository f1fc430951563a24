// monoscope: the desktop app. Opens the bundled demo on first launch (building its feature
// database as a job with progress if it is missing), the last workspace afterwards, or what the
// command line names.
#include <csignal>
#include <QApplication>
#include <QCommandLineParser>
#include <QFileInfo>
#include <QIcon>
#include <QMessageBox>
#include <QSettings>
#include <QTimer>
#include <cstdio>

#include "ui/jobs_panel.h"
#include "ui/session.h"

#include "ui/demo_paths.h"
#include "ui/main_window.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  // A full disk or a file-size limit makes writes fail (and say so, keeping the previous file)
  // instead of killing the process with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  QApplication::setApplicationName("monoscope");
  QApplication::setOrganizationName("monoscope");
  QApplication::setApplicationDisplayName("Monoscope");
  QApplication::setApplicationVersion(MONOSCOPE_VERSION);
  QApplication::setWindowIcon(QIcon(":/monoscope/icons/monoscope.svg"));

  QCommandLineParser parser;
  parser.setApplicationDescription("Browse a sparse autoencoder's features and steer a language model with them.");
  parser.addHelpOption();
  parser.addVersionOption();
  QCommandLineOption model({"m", "model"}, "Hugging Face model folder.", "DIR");
  QCommandLineOption sae({"s", "sae"}, "SAELens SAE folder.", "DIR");
  QCommandLineOption db({"d", "db"}, "Feature database (.db).", "FILE");
  QCommandLineOption demo("demo", "Open the bundled demo (the default on first launch): SmolLM2-135M-Instruct when "
                                  "installed (packaging/install-models.sh), else the toy demo.");
  QCommandLineOption toy("toy-demo", "Open the toy demo (a 6-layer GPT-2 trained by Monoscope).");
  QCommandLineOption screenshot("screenshot",
                                "Once the database and the model are open (after building the database if needed), save "
                                "the window as a PNG and quit.",
                                "FILE");
  parser.addOptions({model, sae, db, demo, toy, screenshot});
  parser.process(app);

  monoscope::ui::MainWindow window;
  window.show();
  QSettings settings;
  monoscope::ui::Workspace w{parser.value(model), parser.value(sae), parser.value(db)};
  const bool named = parser.isSet(model) || parser.isSet(db);
  const bool any_demo = parser.isSet(demo) || parser.isSet(toy);
  if (!named && !any_demo && settings.contains("workspace/model") &&
      QFileInfo::exists(settings.value("workspace/model").toString())) {
    w = {settings.value("workspace/model").toString(), settings.value("workspace/sae").toString(),
         settings.value("workspace/database").toString()};
    if (!QFileInfo(w.database).isFile()) w.database.clear();
  } else if (!named) {
    const auto d = monoscope::ui::findDemo(MONOSCOPE_SOURCE_DATA, parser.isSet(toy));
    if (d.root.isEmpty()) {
      QMessageBox::information(&window, "Monoscope",
                               "The bundled demo was not found. Open a model (File > Open Model) and a feature "
                               "database (File > Open Feature Database).");
      return app.exec();
    }
    const bool built = d.databaseExists();  // reads the database and the SAE's fingerprint
    w = {d.model, d.sae, built ? d.database : QString()};
    if (!built)
      window.buildDatabase(d.model, d.sae, d.corpus, d.database, d.tokens);
  }
  window.openWorkspace(w);
  if (parser.isSet(screenshot)) {
    // Poll until the workspace is ready and no job or model work is pending, then save and quit.
    auto* timer = new QTimer(&window);
    const QString path = parser.value(screenshot);
    const bool want_engine = !w.model_dir.isEmpty();  // a database alone is browsed without a model
    QObject::connect(timer, &QTimer::timeout, &window, [&window, timer, path, want_engine]() {
      auto* s = window.session();
      if (!s->db() || (want_engine && !s->worker().hasEngine()) || s->worker().pending() > 0 || window.jobs()->running() > 0) return;
      timer->stop();
      QTimer::singleShot(1500, &window, [&window, path]() {
        const bool ok = window.grab().save(path);
        std::fprintf(ok ? stdout : stderr, ok ? "saved %s\n" : "could not write %s\n", qPrintable(path));
        QApplication::exit(ok ? 0 : 1);
      });
    });
    timer->start(500);
  }
  return app.exec();
}
