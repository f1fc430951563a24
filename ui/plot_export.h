#pragma once
// Exporting plots: PNG, SVG or PDF chosen by the file's suffix, and a context menu that asks
// for the file.
#include <QString>

class QCustomPlot;
class QWidget;

namespace monoscope::ui {

// Writes the plot; returns an error message (empty on success) naming the file.
QString savePlot(QCustomPlot* plot, const QString& path, int width = 0, int height = 0);
// Adds "Export as PNG / SVG / PDF..." to the plot's context menu.
void enablePlotExport(QCustomPlot* plot, const QString& default_name);

}  // namespace monoscope::ui
