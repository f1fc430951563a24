#include "demo_paths.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include "api/feature_db.h"
#include "api/indexer.h"
#include "util/error.h"

namespace monoscope::ui {

bool DemoPaths::databaseExists() const {
  if (database.isEmpty() || QFileInfo(database).size() <= 0) return false;
  try {
    const auto db = core::FeatureDb::open(database.toStdString());
    return db->metaValue("sae_fingerprint") == core::dictionaryFingerprint(sae.toStdString());
  } catch (const core::Error&) {
    return false;  // unreadable: built again
  }
}

namespace {

// A demo folder: the real one holds a .gguf model and sae/, the toy one model/ and sae/.
bool readDemo(const QDir& dir, DemoPaths* d) {
  if (!QFileInfo(dir.filePath("sae/cfg.json")).isFile()) return false;
  const QStringList gguf = dir.entryList({"*.gguf"}, QDir::Files, QDir::Name);
  if (!gguf.isEmpty()) {
    d->model = dir.filePath(gguf.front());
    d->real = true;
    d->tokens = kRealDemoIndexTokens;
  } else if (QFileInfo(dir.filePath("model/config.json")).isFile()) {
    d->model = dir.filePath("model");
    d->real = false;
    d->tokens = kToyDemoIndexTokens;
  } else {
    return false;
  }
  d->root = dir.absolutePath();
  d->sae = dir.filePath("sae");
  d->corpus = dir.filePath("corpus/sample.tokens.safetensors");
  const QString beside = dir.filePath("features.db");
  if (QFileInfo(beside).size() > 0 || QFileInfo(dir.absolutePath()).isWritable()) {
    d->database = beside;
  } else {
    const QString data = QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation);
    QDir().mkpath(data);
    d->database = QDir(data).filePath(d->real ? "smollm2-features.db" : "demo-features.db");
  }
  return true;
}

}  // namespace

DemoPaths findDemo(const QString& source_data, bool toy) {
  QStringList candidates;
  if (qEnvironmentVariableIsSet("MONOSCOPE_DEMO")) candidates << qEnvironmentVariable("MONOSCOPE_DEMO");
  QStringList roots = {QDir(QCoreApplication::applicationDirPath()).filePath("../share/monoscope")};
  if (!source_data.isEmpty()) roots << source_data;
  for (const auto& r : roots) {
    if (!toy) candidates << QDir(r).filePath("smollm2");
    candidates << QDir(r).filePath("demo");
  }
  for (const auto& c : candidates) {
    DemoPaths d;
    if (readDemo(QDir(c), &d) && (!toy || !d.real)) return d;
  }
  return {};
}

}  // namespace monoscope::ui
