#include "text/pipeline.h"

#include "text/split_regex.h"

#include <unicode/uchar.h>
#include <unicode/utf16.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <functional>

#include "util/error.h"
#include "util/utf8.h"

namespace monoscope::core {

using json = nlohmann::json;

namespace {

std::size_t charLen(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

}  // namespace

NormalizedText NormalizedText::identity(std::string_view text, std::size_t base) {
  NormalizedText t;
  t.s.assign(text);
  t.begin.resize(text.size());
  t.end.resize(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    t.begin[i] = base + i;
    t.end[i] = base + i + 1;
  }
  return t;
}

void NormalizedText::append(std::string_view bytes, std::size_t from, std::size_t to) {
  s.append(bytes);
  begin.insert(begin.end(), bytes.size(), from);
  end.insert(end.end(), bytes.size(), to);
}

void NormalizedText::appendCopy(const NormalizedText& o, std::size_t b, std::size_t e) {
  s.append(o.s, b, e - b);
  begin.insert(begin.end(), o.begin.begin() + static_cast<std::ptrdiff_t>(b), o.begin.begin() + static_cast<std::ptrdiff_t>(e));
  end.insert(end.end(), o.end.begin() + static_cast<std::ptrdiff_t>(b), o.end.begin() + static_cast<std::ptrdiff_t>(e));
}

// ---------------------------------------------------------------------------------------------
// Steps.

struct TextPipeline::Step {
  virtual ~Step() = default;
  // Normalizers rewrite the whole text; pre-tokenizers split (and may rewrite) the pieces.
  virtual void normalize(NormalizedText*) const {}
  virtual void split(NormalizedText*, std::vector<Span>*) const {}
};

namespace {

using Step = TextPipeline::Step;
using Behavior = TextPipeline::Behavior;

// Rebuilds the text from its pieces, each passed through `fn` (which appends the rewritten piece
// to the new text); the pieces become the new spans.
void rewritePieces(NormalizedText* t, std::vector<Span>* pieces,
                   const std::function<void(const NormalizedText&, Span, NormalizedText*, std::vector<Span>*)>& fn) {
  NormalizedText out;
  out.s.reserve(t->s.size());
  std::vector<Span> spans;
  for (const Span& p : *pieces) fn(*t, p, &out, &spans);
  *t = std::move(out);
  *pieces = std::move(spans);
}

// Copies piece p of `in` to `out`, with `from` replaced by `to` (alignment: the replaced bytes'
// span). Returns nothing; appends to out.
void appendReplaced(const NormalizedText& in, Span p, const std::string& from, const std::string& to, NormalizedText* out) {
  std::size_t i = p.begin;
  while (i < p.end) {
    const std::size_t f = from.empty() ? std::string::npos : in.s.find(from, i);
    if (f == std::string::npos || f + from.size() > p.end) {
      out->appendCopy(in, i, p.end);
      break;
    }
    out->appendCopy(in, i, f);
    out->append(to, in.begin[f], in.end[f + from.size() - 1]);
    i = f + from.size();
  }
}

// Prepends `what` to piece p (aligned to the piece's first character, as Hugging Face does).
void appendPrepended(const NormalizedText& in, Span p, const std::string& what, NormalizedText* out) {
  if (p.end > p.begin) {
    const std::size_t first_end = p.begin + charLen(static_cast<unsigned char>(in.s[p.begin]));
    out->append(what, in.begin[p.begin], in.end[first_end - 1]);
  }
  out->appendCopy(in, p.begin, p.end);
}

// Hugging Face's split of one piece by delimiter matches (ranges relative to the text).
void splitByMatches(Span p, const std::vector<std::pair<std::size_t, std::size_t>>& found, Behavior behavior,
                    bool invert, std::vector<Span>* out) {
  struct Part {
    std::size_t b, e;
    bool match;
  };
  std::vector<Part> parts;
  std::size_t prev = p.begin;
  for (const auto& [b, e] : found) {
    if (b > prev) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev < p.end) parts.push_back({prev, p.end, false});
  if (invert)
    for (auto& x : parts) x.match = !x.match;
  std::vector<Span> res;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Removed:
      for (const auto& x : parts)
        if (!x.match) res.push_back({x.b, x.e});
      break;
    case Behavior::Isolated:
      for (const auto& x : parts) res.push_back({x.b, x.e});
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& x : parts) {
        if (x.match && !previous_match && !res.empty()) res.back().end = x.e;
        else res.push_back({x.b, x.e});
        previous_match = x.match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !previous_match && !res.empty()) res.back().begin = it->b;
        else res.push_back({it->b, it->e});
        previous_match = it->match;
      }
      std::reverse(res.begin(), res.end());
      break;
    case Behavior::Contiguous:
      for (const auto& x : parts) {
        if (x.match == previous_match && !res.empty()) res.back().end = x.e;
        else res.push_back({x.b, x.e});
        previous_match = x.match;
      }
      break;
  }
  for (const Span& s : res)
    if (s.end > s.begin) out->push_back(s);
}

void literalMatches(std::string_view s, Span p, const std::string& pat, std::vector<std::pair<std::size_t, std::size_t>>* out) {
  if (pat.empty()) return;
  std::size_t i = p.begin;
  while (true) {
    const std::size_t f = s.find(pat, i);
    if (f == std::string_view::npos || f + pat.size() > p.end) break;
    out->emplace_back(f, f + pat.size());
    i = f + pat.size();
  }
}

struct Prepend final : Step {
  std::string what;
  void normalize(NormalizedText* t) const override {
    if (t->s.empty()) return;
    NormalizedText out;
    appendPrepended(*t, {0, t->s.size()}, what, &out);
    *t = std::move(out);
  }
};

struct Replace final : Step {
  std::string from, to;
  void normalize(NormalizedText* t) const override {
    if (t->s.find(from) == std::string::npos) return;
    NormalizedText out;
    appendReplaced(*t, {0, t->s.size()}, from, to, &out);
    *t = std::move(out);
  }
};

// Unicode normalisation (ICU), segment by segment between normalisation boundaries, so each
// output segment aligns to the input it came from.
// UTF-8 <-> UTF-16 through ICU (the input is valid UTF-8: the tokenizer checks it first).
std::u16string toUtf16(std::string_view s) {
  std::u16string out(s.size() + 1, u'\0');  // never more UTF-16 units than UTF-8 bytes
  int32_t n = 0;
  UErrorCode st = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &n, s.data(), static_cast<int32_t>(s.size()), &st);
  if (U_FAILURE(st)) throw Error(std::string("text conversion to UTF-16 failed (") + u_errorName(st) + ")");
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string toUtf8(const std::u16string& s) {
  std::string out(s.size() * 3 + 1, '\0');
  int32_t n = 0;
  UErrorCode st = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &n, reinterpret_cast<const UChar*>(s.data()), static_cast<int32_t>(s.size()), &st);
  if (U_FAILURE(st)) throw Error(std::string("text conversion to UTF-8 failed (") + u_errorName(st) + ")");
  out.resize(static_cast<std::size_t>(n));
  return out;
}

struct UnicodeForm final : Step {
  const UNormalizer2* norm = nullptr;
  bool normalized(const std::u16string& u) const {
    UErrorCode st = U_ZERO_ERROR;
    return unorm2_isNormalized(norm, reinterpret_cast<const UChar*>(u.data()), static_cast<int32_t>(u.size()), &st) && U_SUCCESS(st);
  }
  void normalize(NormalizedText* t) const override {
    if (normalized(toUtf16(t->s))) return;
    NormalizedText out;
    std::size_t seg = 0;  // start byte of the current segment
    auto flush = [&](std::size_t stop) {
      if (stop <= seg) return;
      const std::u16string in = toUtf16(std::string_view(t->s).substr(seg, stop - seg));
      if (normalized(in)) {
        out.appendCopy(*t, seg, stop);
      } else {
        std::u16string res(in.size() * 4 + 8, u'\0');
        UErrorCode st = U_ZERO_ERROR;
        const int32_t n = unorm2_normalize(norm, reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()),
                                           reinterpret_cast<UChar*>(res.data()), static_cast<int32_t>(res.size()), &st);
        if (U_FAILURE(st)) throw Error(std::string("Unicode normalisation failed (") + u_errorName(st) + ")");
        res.resize(static_cast<std::size_t>(n));
        out.append(toUtf8(res), t->begin[seg], t->end[stop - 1]);
      }
      seg = stop;
    };
    for (std::size_t i = 0; i < t->s.size();) {
      std::size_t len = 0;
      const std::uint32_t cp = decodeUtf8(t->s, i, &len);
      if (i > seg && unorm2_hasBoundaryBefore(norm, static_cast<UChar32>(cp))) flush(i);
      i += len;
    }
    flush(t->s.size());
    *t = std::move(out);
  }
};

// Lowercasing as tokenizers does it: character by character with the full Unicode mapping
// (U+0130 becomes "i" + U+0307), without context (a final capital sigma becomes U+03C3 too).
struct Lowercase final : Step {
  void normalize(NormalizedText* t) const override {
    NormalizedText out;
    for (std::size_t i = 0; i < t->s.size();) {
      std::size_t len = 0;
      const std::uint32_t cp = decodeUtf8(t->s, i, &len);
      UChar src[2], dst[8];
      int32_t n = 0;
      U16_APPEND_UNSAFE(src, n, static_cast<UChar32>(cp));
      UErrorCode st = U_ZERO_ERROR;
      const int32_t m = u_strToLower(dst, 8, src, n, "", &st);
      std::string l;
      for (int32_t j = 0; U_SUCCESS(st) && j < m;) {
        UChar32 c;
        U16_NEXT_UNSAFE(dst, j, c);
        appendUtf8(l, static_cast<std::uint32_t>(c));
      }
      if (U_FAILURE(st) || m <= 0 || l == t->s.substr(i, len)) out.appendCopy(*t, i, i + len);
      else out.append(l, t->begin[i], t->end[i + len - 1]);
      i += len;
    }
    *t = std::move(out);
  }
};

struct SplitLiteral final : Step {
  std::string pattern;
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  void split(NormalizedText* t, std::vector<Span>* pieces) const override {
    std::vector<Span> out;
    std::vector<std::pair<std::size_t, std::size_t>> found;
    for (const Span& p : *pieces) {
      found.clear();
      literalMatches(t->s, p, pattern, &found);
      splitByMatches(p, found, behavior, invert, &out);
    }
    *pieces = std::move(out);
  }
};

struct SplitRegex final : Step {
  std::shared_ptr<const Regex> regex;
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  void split(NormalizedText* t, std::vector<Span>* pieces) const override {
    std::vector<Span> out;
    std::vector<std::pair<std::size_t, std::size_t>> found;
    for (const Span& p : *pieces) {
      found.clear();
      regex->matches(std::string_view(t->s).substr(p.begin, p.end - p.begin), &found);
      for (auto& [b, e] : found) {
        b += p.begin;
        e += p.begin;
      }
      splitByMatches(p, found, behavior, invert, &out);
    }
    *pieces = std::move(out);
  }
};

struct DigitsStep final : Step {
  bool individual = false;
  void split(NormalizedText* t, std::vector<Span>* pieces) const override {
    std::vector<Span> out, inner;
    for (const Span& p : *pieces) {
      inner.clear();
      splitDigits(std::string_view(t->s).substr(p.begin, p.end - p.begin), individual, &inner);
      for (const Span& s : inner) out.push_back({p.begin + s.begin, p.begin + s.end});
    }
    *pieces = std::move(out);
  }
};

struct ByteLevelStep final : Step {
  bool add_prefix_space = false;
  bool use_regex = true;
  void split(NormalizedText* t, std::vector<Span>* pieces) const override {
    if (add_prefix_space) {
      rewritePieces(t, pieces, [](const NormalizedText& in, Span p, NormalizedText* out, std::vector<Span>* spans) {
        const std::size_t start = out->size();
        if (in.s[p.begin] == ' ') out->appendCopy(in, p.begin, p.end);
        else appendPrepended(in, p, " ", out);
        spans->push_back({start, out->size()});
      });
    }
    if (!use_regex) return;
    std::vector<Span> out, inner;
    for (const Span& p : *pieces) {
      inner.clear();
      pretokenizeGpt2(std::string_view(t->s).substr(p.begin, p.end - p.begin), &inner);
      for (const Span& s : inner) out.push_back({p.begin + s.begin, p.begin + s.end});
    }
    *pieces = std::move(out);
  }
};

struct MetaspaceStep final : Step {
  std::string replacement = "\xE2\x96\x81";  // U+2581
  enum class Scheme { Always, First, Never } scheme = Scheme::Always;
  bool split_on_replacement = true;
  void split(NormalizedText* t, std::vector<Span>* pieces) const override {
    const std::string rep = replacement;
    const Scheme sch = scheme;
    rewritePieces(t, pieces, [&](const NormalizedText& in, Span p, NormalizedText* out, std::vector<Span>* spans) {
      NormalizedText piece;
      appendReplaced(in, p, " ", rep, &piece);
      const bool starts = piece.s.compare(0, rep.size(), rep) == 0;
      const bool prepend = !starts && !piece.s.empty() &&
                           (sch == Scheme::Always || (sch == Scheme::First && piece.begin[0] == 0));
      const std::size_t start = out->size();
      if (prepend) appendPrepended(piece, {0, piece.size()}, rep, out);
      else out->appendCopy(piece, 0, piece.size());
      spans->push_back({start, out->size()});
    });
    if (!split_on_replacement) return;
    std::vector<Span> out;
    std::vector<std::pair<std::size_t, std::size_t>> found;
    for (const Span& p : *pieces) {
      found.clear();
      literalMatches(t->s, p, rep, &found);
      splitByMatches(p, found, Behavior::MergedWithNext, false, &out);
    }
    *pieces = std::move(out);
  }
};

Behavior behaviorOf(const json& step, const std::string& where) {
  static const std::pair<const char*, Behavior> kBehaviors[] = {
      {"Removed", Behavior::Removed},
      {"Isolated", Behavior::Isolated},
      {"MergedWithPrevious", Behavior::MergedWithPrevious},
      {"MergedWithNext", Behavior::MergedWithNext},
      {"Contiguous", Behavior::Contiguous},
  };
  const std::string b = step.contains("behavior") && step["behavior"].is_string() ? step["behavior"].get<std::string>() : "";
  for (const auto& [name, value] : kBehaviors)
    if (b == name) return value;
  throw Error(where + ": Split 'behavior' is '" + b + "'",
              "use one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

// The pattern of a Split or Replace step: {"String": s} or {"Regex": r}.
std::pair<std::string, bool> patternOf(const json& step, const std::string& where, const char* type) {
  if (!step.contains("pattern") || !step["pattern"].is_object())
    throw Error(where + ": " + type + " has no 'pattern' object", "a pattern is {\"String\": ...} or {\"Regex\": ...}");
  const json& p = step["pattern"];
  if (p.contains("String") && p["String"].is_string()) return {p["String"].get<std::string>(), false};
  if (p.contains("Regex") && p["Regex"].is_string()) return {p["Regex"].get<std::string>(), true};
  throw Error(where + ": " + type + " 'pattern' is neither {\"String\": ...} nor {\"Regex\": ...}");
}

std::string stringField(const json& step, const char* key, const std::string& dflt, const std::string& where) {
  if (!step.contains(key) || step[key].is_null()) return dflt;
  if (!step[key].is_string()) throw Error(where + ": '" + key + "' is not a string");
  return step[key].get<std::string>();
}

bool boolField(const json& step, const char* key, bool dflt, const std::string& where) {
  if (!step.contains(key) || step[key].is_null()) return dflt;
  if (!step[key].is_boolean()) throw Error(where + ": '" + key + "' is not true or false");
  return step[key].get<bool>();
}

std::vector<json> flatten(const json& j, const char* list_key) {
  if (j.is_null()) return {};
  if (j.is_object() && j.value("type", "") == "Sequence" && j.contains(list_key) && j[list_key].is_array())
    return std::vector<json>(j[list_key].begin(), j[list_key].end());
  return {j};
}

std::shared_ptr<const Step> unicodeForm(const UNormalizer2* (*instance)(UErrorCode*)) {
  UErrorCode st = U_ZERO_ERROR;
  auto s = std::make_shared<UnicodeForm>();
  s->norm = instance(&st);
  if (U_FAILURE(st) || s->norm == nullptr) throw Error(std::string("ICU has no Unicode normalisation data (") + u_errorName(st) + ")");
  return s;
}

// normalizer type -> builder
using Builder = std::shared_ptr<const Step> (*)(const json&, const std::string&);

const std::pair<const char*, Builder> kNormalizers[] = {
    {"Prepend", [](const json& j, const std::string& w) -> std::shared_ptr<const Step> {
       auto s = std::make_shared<Prepend>();
       s->what = stringField(j, "prepend", "", w + " normalizer Prepend");
       return s;
     }},
    {"Replace", [](const json& j, const std::string& w) -> std::shared_ptr<const Step> {
       const auto [pattern, regex] = patternOf(j, w + " normalizer", "Replace");
       if (regex) throw Error(w + ": normalizer Replace with a regex pattern is not supported", "only literal {\"String\": ...} patterns are");
       auto s = std::make_shared<Replace>();
       s->from = pattern;
       s->to = stringField(j, "content", "", w + " normalizer Replace");
       if (s->from.empty()) throw Error(w + ": normalizer Replace has an empty pattern");
       return s;
     }},
    {"NFC", [](const json&, const std::string&) { return unicodeForm(unorm2_getNFCInstance); }},
    {"NFD", [](const json&, const std::string&) { return unicodeForm(unorm2_getNFDInstance); }},
    {"NFKC", [](const json&, const std::string&) { return unicodeForm(unorm2_getNFKCInstance); }},
    {"NFKD", [](const json&, const std::string&) { return unicodeForm(unorm2_getNFKDInstance); }},
    {"Lowercase", [](const json&, const std::string&) -> std::shared_ptr<const Step> { return std::make_shared<Lowercase>(); }},
};

const std::pair<const char*, Builder> kPreTokenizers[] = {
    {"Split", [](const json& j, const std::string& w) -> std::shared_ptr<const Step> {
       const auto [pattern, regex] = patternOf(j, w + " pre-tokenizer", "Split");
       const Behavior b = behaviorOf(j, w + " pre-tokenizer");
       const bool invert = boolField(j, "invert", false, w + " pre-tokenizer Split");
       if (regex) {
         auto s = std::make_shared<SplitRegex>();
         s->regex = std::make_shared<const Regex>(pattern, w + " pre-tokenizer");
         s->behavior = b;
         s->invert = invert;
         return s;
       }
       auto s = std::make_shared<SplitLiteral>();
       s->pattern = pattern;
       s->behavior = b;
       s->invert = invert;
       return s;
     }},
    {"Digits", [](const json& j, const std::string& w) -> std::shared_ptr<const Step> {
       auto s = std::make_shared<DigitsStep>();
       s->individual = boolField(j, "individual_digits", false, w + " pre-tokenizer Digits");
       return s;
     }},
    {"ByteLevel", [](const json& j, const std::string& w) -> std::shared_ptr<const Step> {
       auto s = std::make_shared<ByteLevelStep>();
       s->add_prefix_space = boolField(j, "add_prefix_space", true, w + " pre-tokenizer ByteLevel");
       s->use_regex = boolField(j, "use_regex", true, w + " pre-tokenizer ByteLevel");
       return s;
     }},
    {"Metaspace", [](const json& j, const std::string& w) -> std::shared_ptr<const Step> {
       auto s = std::make_shared<MetaspaceStep>();
       s->replacement = stringField(j, "replacement", s->replacement, w + " pre-tokenizer Metaspace");
       if (s->replacement.empty()) throw Error(w + ": pre-tokenizer Metaspace 'replacement' is empty");
       std::string scheme = stringField(j, "prepend_scheme", "", w + " pre-tokenizer Metaspace");
       if (scheme.empty()) scheme = boolField(j, "add_prefix_space", true, w + " pre-tokenizer Metaspace") ? "always" : "never";
       if (scheme == "always") s->scheme = MetaspaceStep::Scheme::Always;
       else if (scheme == "first") s->scheme = MetaspaceStep::Scheme::First;
       else if (scheme == "never") s->scheme = MetaspaceStep::Scheme::Never;
       else throw Error(w + ": pre-tokenizer Metaspace 'prepend_scheme' is '" + scheme + "'", "use always, first or never");
       s->split_on_replacement = boolField(j, "split", true, w + " pre-tokenizer Metaspace");
       return s;
     }},
};

std::shared_ptr<const Step> build(const json& j, const std::pair<const char*, Builder>* table, std::size_t n,
                                  const std::string& where, const char* what, const char* supported) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(where + ": a " + std::string(what) + " step has no 'type'");
  const std::string type = j["type"].get<std::string>();
  for (std::size_t i = 0; i < n; ++i)
    if (type == table[i].first) return table[i].second(j, where);
  throw Error(where + ": " + what + " '" + type + "' is not supported", std::string("supported: ") + supported);
}

}  // namespace

TextPipeline TextPipeline::fromJson(const json& normalizer, const json& pre_tokenizer, const std::string& where) {
  TextPipeline p;
  p.normalizer_json_ = normalizer;
  p.pre_tokenizer_json_ = pre_tokenizer;
  for (const auto& n : flatten(normalizer, "normalizers"))
    p.normalizers_.push_back(build(n, kNormalizers, std::size(kNormalizers), where, "normalizer",
                                   "Prepend, Replace (literal), NFC, NFD, NFKC, NFKD, Lowercase, Sequence"));
  const auto pres = flatten(pre_tokenizer, "pretokenizers");
  int byte_levels = 0;
  for (const auto& s : pres) {
    p.pre_tokenizers_.push_back(build(s, kPreTokenizers, std::size(kPreTokenizers), where, "pre-tokenizer",
                                      "Split, Digits, ByteLevel, Metaspace, Sequence"));
    if (s.value("type", "") == "ByteLevel") ++byte_levels;
  }
  p.byte_level_ = byte_levels > 0;
  // GPT-2 shape: no normalizer, optionally Digits, then exactly one ByteLevel with the pattern and no prefix space.
  if (p.normalizers_.empty() && byte_levels == 1 && !pres.empty() && pres.back().value("type", "") == "ByteLevel") {
    const auto* bl = dynamic_cast<const ByteLevelStep*>(p.pre_tokenizers_.back().get());
    bool ok = bl && bl->use_regex && !bl->add_prefix_space;
    if (pres.size() == 2) {
      const auto* d = dynamic_cast<const DigitsStep*>(p.pre_tokenizers_.front().get());
      ok = ok && d;
      if (d) p.digits_ = d->individual ? 2 : 1;
    } else if (pres.size() > 2) {
      ok = false;
    }
    p.gpt2_shape_ = ok;
  }
  return p;
}

bool TextPipeline::addsPrefixSpace() const {
  for (const auto& s : pre_tokenizers_)
    if (const auto* bl = dynamic_cast<const ByteLevelStep*>(s.get()); bl && bl->add_prefix_space) return true;
  return false;
}

void TextPipeline::run(std::string_view text, std::size_t base, NormalizedText* out, std::vector<Span>* pieces) const {
  *out = NormalizedText::identity(text, base);
  for (const auto& n : normalizers_) n->normalize(out);
  std::vector<Span> spans;
  if (!out->s.empty()) spans.push_back({0, out->s.size()});
  for (const auto& s : pre_tokenizers_) s->split(out, &spans);
  pieces->insert(pieces->end(), spans.begin(), spans.end());
}

}  // namespace monoscope::core
