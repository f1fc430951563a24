#pragma once
#include "args.h"

namespace monoscope::cli {
// Each command returns the process exit code; errors are thrown as core::Error.
int cmdTokenize(const Args& args);
int cmdHubList(const Args& args);
int cmdLogits(const Args& args);
int cmdEncode(const Args& args);
int cmdGenerate(const Args& args);
int cmdSaeConvert(const Args& args);
int cmdImportGguf(const Args& args);
int cmdTopFeatures(const Args& args);
int cmdTrainSae(const Args& args);
int cmdHarvest(const Args& args);
int cmdTokenMeans(const Args& args);
int cmdEvaluateSae(const Args& args);
int cmdSaeThreshold(const Args& args);
int cmdGroundTruth(const Args& args);
int cmdBuildCorpus(const Args& args);
int cmdSampleCorpus(const Args& args);
int cmdTrainTokenizer(const Args& args);
int cmdTrainLm(const Args& args);
int cmdBuildDemo(const Args& args);
int cmdIndex(const Args& args);
int cmdMerge(const Args& args);
int cmdFeature(const Args& args);
int cmdSearch(const Args& args);
int cmdScore(const Args& args);
int cmdExplain(const Args& args);
}  // namespace monoscope::cli
