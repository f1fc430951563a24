#include "corpus/corpus_builder.h"

#include <glob.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_set>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/utf8.h"

namespace fs = std::filesystem;

namespace monoscope::core {

namespace {

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<std::string> splitOn(const std::string& text, const std::string& kind) {
  std::vector<std::string> docs;
  if (kind == "file") {
    docs.push_back(text);
    return docs;
  }
  std::istringstream in(text);
  std::string line, cur, key;
  auto flush = [&] {
    if (!cur.empty()) docs.push_back(cur);
    cur.clear();
  };
  while (std::getline(in, line)) {
    if (kind == "percent") {
      if (line == "%") flush();
      else cur += line + "\n";
    } else if (kind == "blank-lines") {
      if (line.find_first_not_of(" \t\r") == std::string::npos) flush();
      else cur += line + "\n";
    } else if (kind == "bible-chapters") {
      // "Ge1:1 In the beginning ..." -> one document per book and chapter, references dropped.
      const auto colon = line.find(':');
      const auto space = line.find(' ');
      if (colon == std::string::npos || space == std::string::npos || colon > space) {
        cur += line + "\n";
        continue;
      }
      const std::string chapter = line.substr(0, colon);
      if (chapter != key) {
        flush();
        key = chapter;
      }
      cur += line.substr(space + 1) + "\n";
    } else {
      throw Error("corpus manifest: unknown split '" + kind + "'", "use file, percent, blank-lines or bible-chapters");
    }
  }
  flush();
  return docs;
}

std::string readGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw Error("cannot open '" + path + "'", "install the Debian package that ships it");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  const bool failed = n < 0;
  gzclose(f);
  if (failed) throw Error("'" + path + "' is not a readable gzip/dictzip file");
  return out;
}

// dictd's base64 numbers: big-endian digits of this alphabet, no padding.
std::int64_t dictdNumber(const std::string& s, const std::string& where) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::int64_t v = 0;
  for (char c : s) {
    const auto p = alphabet.find(c);
    if (p == std::string::npos || v > (INT64_MAX >> 6)) throw Error(where + ": bad offset field '" + s + "'");
    v = (v << 6) | static_cast<std::int64_t>(p);
  }
  return v;
}

std::vector<std::string> readDictd(const std::string& base) {
  const std::string index_path = base + ".index";
  const std::string data = readGzip(base + ".dict.dz");
  std::istringstream in(readTextFile(index_path));
  std::vector<std::string> docs;
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const auto t1 = line.find('\t');
    const auto t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string::npos) continue;
    const std::string head = line.substr(0, t1);
    if (head.rfind("00-database", 0) == 0 || head.rfind("00database", 0) == 0) continue;
    const std::string where = "'" + index_path + "' line " + std::to_string(lineno);
    const std::int64_t off = dictdNumber(line.substr(t1 + 1, t2 - t1 - 1), where);
    const std::int64_t len = dictdNumber(line.substr(t2 + 1), where);
    if (off < 0 || len < 0 || static_cast<std::size_t>(off + len) > data.size())
      throw Error(where + " points past the end of the dictionary data");
    docs.push_back(data.substr(static_cast<std::size_t>(off), static_cast<std::size_t>(len)));
  }
  return docs;
}

std::string runCommand(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) {
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += q + "' ";
  }
  std::FILE* p = ::popen((cmd + "2>/dev/null").c_str(), "r");
  if (p == nullptr) throw Error("cannot run '" + argv.at(0) + "'");
  std::string out;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = ::pclose(p);
  if (rc != 0 || out.empty()) {
    throw Error("command '" + argv.at(0) + "' failed or printed nothing",
                "install the Debian package that provides it (see data/corpus/sources.json)");
  }
  return out;
}

std::vector<std::string> globPaths(const CorpusSource& s) {
  std::vector<std::string> out;
  for (const auto& pattern : s.paths) {
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) {
        const std::string p = g.gl_pathv[i];
        bool skip = !fs::is_regular_file(p) || fs::is_symlink(p);
        for (const auto& e : s.exclude) skip = skip || p.find(e) != std::string::npos;
        if (!skip) out.push_back(p);
      }
    }
    ::globfree(&g);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> readSource(const CorpusSource& s) {
  if (s.kind == "files") {
    std::vector<std::string> docs;
    for (const auto& p : globPaths(s)) {
      const bool gz = p.size() > 3 && p.compare(p.size() - 3, 3, ".gz") == 0;
      for (auto& d : splitOn(gz ? readGzip(p) : readTextFile(p), s.split)) docs.push_back(std::move(d));
    }
    return docs;
  }
  if (s.kind == "dictd") return readDictd(s.path);
  if (s.kind == "command") return splitOn(runCommand(s.command), s.split);
  throw Error("corpus source '" + s.name + "': unknown kind '" + s.kind + "'", "use files, dictd or command");
}

}  // namespace

std::string cleanText(const std::string& raw) {
  std::string text;
  if (findInvalidUtf8(raw) == std::string::npos) {
    text = raw;
  } else {  // legacy 8-bit text: read as Latin-1
    for (unsigned char c : raw) appendUtf8(text, c);
  }
  std::string out;
  out.reserve(text.size());
  int newlines = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\b') {  // overstrike: "X\bX" or "_\bX" prints one character
      if (!out.empty()) {
        std::size_t k = out.size() - 1;
        while (k > 0 && (static_cast<unsigned char>(out[k]) & 0xC0) == 0x80) --k;
        out.erase(k);
      }
      continue;
    }
    if (c == '\r') continue;
    if (c == '\n') {
      while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
      if (++newlines <= 2) out.push_back('\n');
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') continue;
    newlines = 0;
    out.push_back(c);
  }
  const auto b = out.find_first_not_of(" \t\n");
  if (b == std::string::npos) return {};
  const auto e = out.find_last_not_of(" \t\n");
  return out.substr(b, e - b + 1);
}

CorpusManifest CorpusManifest::fromFile(const std::string& path) {
  const auto j = readJsonFile(path);
  const JsonFields top(j, "'" + path + "'");
  CorpusManifest m;
  m.validation_fraction = top.number("validation_fraction", 0.02);
  if (!(m.validation_fraction > 0 && m.validation_fraction < 0.5)) top.fail("validation_fraction", "must be in (0, 0.5)");
  if (!j.contains("sources") || !j["sources"].is_array() || j["sources"].empty())
    top.fail("sources", "must be a non-empty array");
  for (const auto& e : j["sources"]) {
    const JsonFields f(e, "'" + path + "' source");
    CorpusSource s;
    s.name = f.string("name");
    s.package = f.string("package", "");
    s.licence = f.string("licence");
    s.domain = f.string("domain", "");
    s.kind = f.string("kind");
    s.split = f.string("split", "file");
    s.max_bytes = f.integer("max_bytes", 0);
    s.path = f.string("path", "");
    if (e.contains("paths")) s.paths = e["paths"].get<std::vector<std::string>>();
    if (e.contains("exclude")) s.exclude = e["exclude"].get<std::vector<std::string>>();
    if (e.contains("command")) s.command = e["command"].get<std::vector<std::string>>();
    if (s.kind == "command" && s.command.empty()) f.fail("command", "is missing for a command source");
    if (s.kind == "files" && s.paths.empty()) f.fail("paths", "is missing for a files source");
    if (s.kind == "dictd" && s.path.empty()) f.fail("path", "is missing for a dictd source");
    m.sources.push_back(std::move(s));
  }
  return m;
}

CorpusStats buildCorpusText(const CorpusManifest& manifest, const std::string& out, const ProgressFn& progress) {
  fs::create_directories(out);
  CorpusStats stats;
  std::unordered_set<std::uint64_t> seen;
  std::string train, valid;
  const auto threshold = static_cast<std::uint64_t>(manifest.validation_fraction * 1'000'000.0);
  std::int64_t done = 0;
  const auto total = static_cast<std::int64_t>(manifest.sources.size());
  for (const auto& src : manifest.sources) {
    if (progress && !progress(Progress{"corpus", done++, total, "reading " + src.name})) {
      stats.cancelled = true;
      return stats;
    }
    std::vector<std::string> raw;
    try {
      raw = readSource(src);
    } catch (const Error& e) {
      throw e.withContext("corpus source '" + src.name + "' (Debian package " + src.package + ")");
    }
    CorpusStats::PerSource ps{src.name, src.domain};
    std::vector<std::string> docs;
    std::int64_t total = 0;
    for (auto& r : raw) {
      std::string t = cleanText(r);
      if (t.size() < 16) continue;  // empty or trivial fragments
      if (!seen.insert(fnv1a(t)).second) {
        ++ps.duplicates;
        continue;
      }
      total += static_cast<std::int64_t>(t.size());
      docs.push_back(std::move(t));
    }
    if (docs.empty()) {
      throw Error("corpus source '" + src.name + "' yielded no text",
                  "install Debian package " + src.package + " or remove the source from the manifest");
    }
    // Keep an even, hash-chosen sample when a source is over its byte budget.
    const double keep = src.max_bytes > 0 && total > src.max_bytes ? static_cast<double>(src.max_bytes) / total : 1.0;
    for (auto& d : docs) {
      const std::uint64_t h = fnv1a(d);
      if (keep < 1.0 && static_cast<double>((h >> 20) % 1'000'000) >= keep * 1'000'000.0) continue;
      ++ps.documents;
      ps.bytes += static_cast<std::int64_t>(d.size());
      nlohmann::json line = {{"source", src.name}, {"text", d}};
      const bool is_valid = h % 1'000'000 < threshold;
      (is_valid ? valid : train) += line.dump() + "\n";
      (is_valid ? stats.valid_documents : stats.train_documents) += 1;
      (is_valid ? stats.valid_bytes : stats.train_bytes) += static_cast<std::int64_t>(d.size());
    }
    stats.sources.push_back(ps);
  }
  writeFileAtomically((fs::path(out) / "train.jsonl").string(), train);
  writeFileAtomically((fs::path(out) / "valid.jsonl").string(), valid);
  nlohmann::ordered_json sj;
  for (const auto& s : stats.sources) {
    sj["sources"].push_back({{"name", s.name}, {"domain", s.domain}, {"documents", s.documents},
                             {"bytes", s.bytes}, {"duplicates_dropped", s.duplicates}});
  }
  sj["train_documents"] = stats.train_documents;
  sj["valid_documents"] = stats.valid_documents;
  sj["train_bytes"] = stats.train_bytes;
  sj["valid_bytes"] = stats.valid_bytes;
  writeFileAtomically((fs::path(out) / "stats.json").string(), sj.dump(2));
  return stats;
}

std::vector<Document> readCorpusSplit(const std::string& corpus_dir, const std::string& split) {
  const std::string path = (fs::path(corpus_dir) / (split + ".jsonl")).string();
  std::istringstream in(readTextFile(path));
  std::vector<Document> docs;
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      docs.push_back({j.at("source").get<std::string>(), j.at("text").get<std::string>()});
    } catch (const nlohmann::json::exception& e) {
      throw Error("'" + path + "' line " + std::to_string(lineno) + " is not a corpus record: " + e.what(),
                  "rebuild the corpus with monoscope-cli build-corpus");
    }
  }
  if (docs.empty()) throw Error("'" + path + "' holds no documents", "rebuild the corpus with more sources");
  return docs;
}

std::int64_t writeTokenShard(const std::string& corpus_dir, const std::string& split, const Tokenizer& tok) {
  const auto docs = readCorpusSplit(corpus_dir, split);
  if (tok.endOfTextId() < 0) throw Error("the tokenizer has no end-of-text token", "train it with <|endoftext|>");
  std::vector<std::int32_t> tokens;
  std::vector<std::int64_t> offsets = {0};
  // Each document's source (an index into the `sources` metadata), so that an index can say which
  // domain a feature's examples come from. Domains are read from the corpus's stats.json.
  std::vector<std::int32_t> doc_sources;
  nlohmann::json source_names = nlohmann::json::array(), source_domains = nlohmann::json::array();
  std::map<std::string, std::string> domain_of;
  const fs::path stats_path = fs::path(corpus_dir) / "stats.json";
  if (fs::exists(stats_path)) {
    const auto st = nlohmann::json::parse(readTextFile(stats_path.string()), nullptr, false);
    if (st.is_object() && st.contains("sources") && st["sources"].is_array())
      for (const auto& src : st["sources"])
        if (src.is_object() && src.value("name", "") != "") domain_of[src.value("name", "")] = src.value("domain", "");
  }
  std::map<std::string, std::int32_t> source_ids;
  for (const auto& d : docs) {
    const auto ids = tok.encodeIds(d.text, true);  // each document as the model reads one (a BOS first where it wants one)
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    tokens.push_back(tok.endOfTextId());
    offsets.push_back(static_cast<std::int64_t>(tokens.size()));
    auto it = source_ids.find(d.source);
    if (it == source_ids.end()) {
      it = source_ids.emplace(d.source, static_cast<std::int32_t>(source_ids.size())).first;
      source_names.push_back(d.source);
      source_domains.push_back(domain_of.count(d.source) && !domain_of[d.source].empty() ? domain_of[d.source] : d.source);
    }
    doc_sources.push_back(it->second);
  }
  SafetensorsWriter w;
  w.add("tokens", DType::I32, {static_cast<std::int64_t>(tokens.size())}, tokens.data(), tokens.size() * 4);
  w.add("doc_offsets", DType::I64, {static_cast<std::int64_t>(offsets.size())}, offsets.data(), offsets.size() * 8);
  w.add("doc_sources", DType::I32, {static_cast<std::int64_t>(doc_sources.size())}, doc_sources.data(), doc_sources.size() * 4);
  w.setMetadata("sources", source_names.dump());
  w.setMetadata("source_domains", source_domains.dump());
  w.setMetadata("vocab_size", std::to_string(tok.vocabSize()));
  w.write((fs::path(corpus_dir) / (split + ".tokens.safetensors")).string());
  return static_cast<std::int64_t>(tokens.size());
}

std::int64_t sampleTokenShard(const std::string& shard, std::int64_t tokens, const std::string& out) {
  const SafetensorsFile in(shard);
  const auto& tv = in.tensor("tokens");
  const auto& ov = in.tensor("doc_offsets");
  if (tv.dtype != DType::I32 || tv.shape.size() != 1 || ov.dtype != DType::I64 || ov.shape.size() != 1 || ov.shape[0] < 2)
    throw Error("'" + shard + "' is not a token shard with document offsets", "write it with monoscope-cli build-corpus");
  const auto* tok = reinterpret_cast<const std::int32_t*>(tv.data);
  const auto* off = reinterpret_cast<const std::int64_t*>(ov.data);
  const std::int64_t docs = ov.shape[0] - 1, total = tv.shape[0];
  const std::int32_t* src = nullptr;
  if (in.has("doc_sources")) {
    const auto& sv = in.tensor("doc_sources");
    if (sv.dtype != DType::I32 || sv.shape.size() != 1 || sv.shape[0] != docs)
      throw Error("'" + shard + "': doc_sources does not have one I32 entry per document");
    src = reinterpret_cast<const std::int32_t*>(sv.data);
  }
  if (tokens <= 0) throw Error("the sample needs a positive token count");
  for (std::int64_t d = 0; d < docs; ++d)
    if (off[d] < 0 || off[d + 1] < off[d] || off[d + 1] > total)
      throw Error("'" + shard + "': document " + std::to_string(d) + " has bad offsets");
  // Walking the whole shard, a document is kept when it starts at or after the next point, and
  // the point then moves `step` times the kept document's length ahead: every stretch of the
  // shard (and so every source, in proportion to its tokens) is represented, and a long document
  // is no likelier to be kept than a short one. The smallest step whose sample fits the budget
  // is found by bisection (the sample shrinks as the step grows).
  const auto walk = [&](double step, std::vector<std::int64_t>* chosen) {
    std::int64_t n = 0;
    double next = 0;
    for (std::int64_t d = 0; d < docs; ++d) {
      const std::int64_t b = off[d], e = off[d + 1];
      if (static_cast<double>(b) < next || e == b) continue;
      n += e - b;
      if (chosen) chosen->push_back(d);
      next = static_cast<double>(b) + step * static_cast<double>(e - b);
    }
    return n;
  };
  double lo = 1.0, hi = std::max(2.0, static_cast<double>(total));
  if (walk(lo, nullptr) > tokens) {
    for (int i = 0; i < 60 && hi - lo > 1e-6 * lo; ++i) {
      const double mid = 0.5 * (lo + hi);
      (walk(mid, nullptr) > tokens ? lo : hi) = mid;
    }
  } else {
    hi = lo;
  }
  std::vector<std::int64_t> chosen;
  walk(hi, &chosen);
  std::vector<std::int32_t> kept;
  std::vector<std::int64_t> offsets = {0};
  std::vector<std::int32_t> sources;
  for (const std::int64_t d : chosen) {
    kept.insert(kept.end(), tok + off[d], tok + off[d + 1]);
    offsets.push_back(static_cast<std::int64_t>(kept.size()));
    if (src) sources.push_back(src[d]);
  }
  SafetensorsWriter w;
  w.add("tokens", DType::I32, {static_cast<std::int64_t>(kept.size())}, kept.data(), kept.size() * 4);
  w.add("doc_offsets", DType::I64, {static_cast<std::int64_t>(offsets.size())}, offsets.data(), offsets.size() * 8);
  if (src) w.add("doc_sources", DType::I32, {static_cast<std::int64_t>(sources.size())}, sources.data(), sources.size() * 4);
  for (const auto& [k, v] : in.metadata()) w.setMetadata(k, v);
  w.setMetadata("sampled_from", fs::path(shard).filename().string() + ": whole documents, evenly spaced");
  w.write(out);
  return static_cast<std::int64_t>(kept.size());
}

}  // namespace monoscope::core
