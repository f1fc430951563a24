// Compiled with monoscope_core's public headers only: proves a front end needs no LibTorch
// (the api_headers_without_torch test checks this file's compile command has no torch path).
// As a program it prints a feature database's summary: `monoscope-api-check FILE.db`.
#include <iostream>

#include "api/engine.h"
#include "api/feature_db.h"
#include "api/indexer.h"
#include "api/progress.h"
#include "api/ranking.h"
#include "api/scoring.h"
#include "api/types.h"

int main(int argc, char** argv) {
  using namespace monoscope::core;
  if (argc != 2) {
    std::cerr << "usage: monoscope-api-check FILE.db\n";
    return 2;
  }
  try {
    const auto db = FeatureDb::open(argv[1]);
    FeatureQuery q;
    q.sort = FeatureSort::Density;
    q.descending = true;
    q.limit = 3;
    std::cout << db->info().d_sae << " features over " << db->info().tokens << " tokens\n";
    for (const auto& f : db->listFeatures(q)) std::cout << f.id << " " << f.density << " " << f.explanation << "\n";
    const float scores[] = {0.5f, 2.0f, 1.0f};
    std::cout << "top " << topFeatures(scores, 3, 1).front().feature << "\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
