#include "steering_export.h"

#include <QDateTime>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

namespace monoscope::ui {

namespace {
QString fenced(const QString& text) {
  QString fence = "```";
  while (text.contains(fence)) fence += '`';
  return fence + "text\n" + text + "\n" + fence + "\n";
}
}

QString steeringRunMarkdown(const core::SteeringRunRecord& run) {
  const QJsonObject request = QJsonDocument::fromJson(QByteArray::fromStdString(run.request_json)).object();
  QString md;
  md += QStringLiteral("# Steering run %1\n\n").arg(run.id);
  md += QStringLiteral("%1\n\n").arg(QDateTime::fromSecsSinceEpoch(static_cast<qint64>(run.created)).toString(Qt::ISODate));
  md += QStringLiteral("- mode: %1, positions: %2\n").arg(request["mode"].toString(), request["positions"].toString());
  md += QStringLiteral("- temperature %1, top-p %2, seed %3, max tokens %4\n\n")
            .arg(request["temperature"].toDouble())
            .arg(request["top_p"].toDouble())
            .arg(request["seed"].toVariant().toString())
            .arg(request["max_tokens"].toInt());
  md += "| feature | value | explanation |\n|---:|---:|---|\n";
  for (const auto& f : request["features"].toArray()) {
    const auto o = f.toObject();
    QString label = o["explanation"].toString();
    label.replace('|', "\\|");
    md += QStringLiteral("| %1 | %2 | %3 |\n").arg(o["feature"].toVariant().toString()).arg(o["value"].toDouble()).arg(label);
  }
  md += "\n## Prompt\n\n" + fenced(QString::fromStdString(run.prompt));
  md += "\n## Default\n\n" + fenced(QString::fromStdString(run.default_text));
  md += "\n## Steered\n\n" + fenced(QString::fromStdString(run.steered_text));
  return md;
}

QString steeringRunJson(const core::SteeringRunRecord& run) {
  QJsonObject o;
  o["id"] = static_cast<qint64>(run.id);
  o["created"] = run.created;
  o["prompt"] = QString::fromStdString(run.prompt);
  o["request"] = QJsonDocument::fromJson(QByteArray::fromStdString(run.request_json)).object();
  o["default"] = QString::fromStdString(run.default_text);
  o["steered"] = QString::fromStdString(run.steered_text);
  return QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Indented));
}

QString exportSteeringRun(const core::SteeringRunRecord& run, const QString& path) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  QString text;
  if (suffix == "md" || suffix == "markdown") text = steeringRunMarkdown(run);
  else if (suffix == "json") text = steeringRunJson(run);
  else return QObject::tr("%1: choose a file ending in .md or .json.").arg(path);
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly) || file.write(text.toUtf8()) < 0 || !file.commit())
    return QObject::tr("Could not write %1: %2").arg(path, file.errorString());
  return {};
}

}  // namespace monoscope::ui
