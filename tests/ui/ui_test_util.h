#pragma once
// Shared set-up of the UI tests: isolated settings, the demo paths and the small demo database.
#include <QCoreApplication>
#include <QStandardPaths>
#include <QString>

namespace monoscope::ui::test {

inline void isolateSettings() {
  QStandardPaths::setTestModeEnabled(true);
  QCoreApplication::setOrganizationName("monoscope-tests");
  QCoreApplication::setApplicationName("monoscope-tests");
}

inline QString demoModel() { return QStringLiteral(MONOSCOPE_DEMO_DIR "/model"); }
inline QString demoSae() { return QStringLiteral(MONOSCOPE_DEMO_DIR "/sae"); }
inline QString demoDb() { return QStringLiteral(MONOSCOPE_UI_DB); }

}  // namespace monoscope::ui::test

#include <QFile>
#include <QTemporaryDir>

namespace monoscope::ui::test {

// A writable copy of the demo database (labels, explanations and runs are written to it).
inline QString writableDbCopy(const QTemporaryDir& dir) {
  const QString path = dir.filePath("features.db");
  QFile::remove(path);
  QFile::copy(demoDb(), path);
  QFile(path).setPermissions(QFile::ReadOwner | QFile::WriteOwner);
  return path;
}

}  // namespace monoscope::ui::test
