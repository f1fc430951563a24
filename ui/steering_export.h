#pragma once
// A steering run as a shareable document: Markdown (settings, features, both completions) or
// JSON (the same fields, machine-readable).
#include <QString>

#include "api/feature_db.h"

namespace monoscope::ui {

QString steeringRunMarkdown(const core::SteeringRunRecord& run);
QString steeringRunJson(const core::SteeringRunRecord& run);
// Writes either format by the file's suffix (.md or .json); returns an error naming the file.
QString exportSteeringRun(const core::SteeringRunRecord& run, const QString& path);

}  // namespace monoscope::ui
