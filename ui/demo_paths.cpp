#include "demo_paths.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

namespace monoscope::ui {

bool DemoPaths::databaseExists() const { return !database.isEmpty() && QFileInfo(database).size() > 0; }

DemoPaths findDemo(const QString& source_demo) {
  QStringList candidates;
  if (qEnvironmentVariableIsSet("MONOSCOPE_DEMO")) candidates << qEnvironmentVariable("MONOSCOPE_DEMO");
  candidates << QDir(QCoreApplication::applicationDirPath()).filePath("../share/monoscope/demo");
  if (!source_demo.isEmpty()) candidates << source_demo;
  DemoPaths d;
  for (const auto& c : candidates) {
    const QDir dir(c);
    if (!QFileInfo(dir.filePath("model/config.json")).isFile()) continue;
    d.root = dir.absolutePath();
    d.model = dir.filePath("model");
    d.sae = dir.filePath("sae");
    d.corpus = dir.filePath("corpus/sample.tokens.safetensors");
    const QString beside = dir.filePath("features.db");
    if (QFileInfo(beside).size() > 0 || QFileInfo(dir.absolutePath()).isWritable()) {
      d.database = beside;
    } else {
      const QString data = QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation);
      QDir().mkpath(data);
      d.database = QDir(data).filePath("demo-features.db");
    }
    return d;
  }
  return d;
}

}  // namespace monoscope::ui
