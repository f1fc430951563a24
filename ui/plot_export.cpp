#include "plot_export.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMessageBox>
#include <QPainter>
#include <QSvgGenerator>
#include <qcustomplot.h>

namespace monoscope::ui {

QString savePlot(QCustomPlot* plot, const QString& path, int width, int height) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  const int w = width > 0 ? width : plot->width();
  const int h = height > 0 ? height : plot->height();
  bool ok = false;
  if (suffix == "png") {
    ok = plot->savePng(path, w, h, 2.0);
  } else if (suffix == "pdf") {
    ok = plot->savePdf(path, w, h);
  } else if (suffix == "svg") {
    QSvgGenerator svg;
    svg.setFileName(path);
    svg.setSize(QSize(w, h));
    svg.setViewBox(QRect(0, 0, w, h));
    svg.setTitle(plot->objectName());
    QCPPainter painter;
    if (painter.begin(&svg)) {
      plot->toPainter(&painter, w, h);
      ok = painter.end();
    }
  } else {
    return QObject::tr("%1: choose a file ending in .png, .svg or .pdf.").arg(path);
  }
  return ok ? QString() : QObject::tr("Could not write %1: check the folder exists and is writable.").arg(path);
}

void enablePlotExport(QCustomPlot* plot, const QString& default_name) {
  plot->setContextMenuPolicy(Qt::CustomContextMenu);
  QObject::connect(plot, &QWidget::customContextMenuRequested, plot, [plot, default_name](const QPoint& pos) {
    QMenu menu(plot);
    for (const char* kind : {"png", "svg", "pdf"}) {
      const QString suffix = kind;
      menu.addAction(QObject::tr("Export as %1...").arg(suffix.toUpper()), plot, [plot, default_name, suffix]() {
        const QString path = QFileDialog::getSaveFileName(plot, QObject::tr("Export plot"), default_name + "." + suffix,
                                                          QStringLiteral("*.%1").arg(suffix));
        if (path.isEmpty()) return;
        const QString error = savePlot(plot, path);
        if (!error.isEmpty()) QMessageBox::warning(plot, QObject::tr("Export plot"), error);
      });
    }
    menu.exec(plot->mapToGlobal(pos));
  });
}

}  // namespace monoscope::ui
