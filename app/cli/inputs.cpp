#include "inputs.h"

#include "util/error.h"
#include "util/mapped_file.h"
#include "util/runtime.h"
#include "util/utf8.h"

using monoscope::core::Error;

namespace monoscope::cli {

std::string readTextInput(const Args& args) {
  if (args.has("text") && args.has("text-file")) throw Error("give either --text or --text-file, not both");
  std::string text;
  std::string source;
  if (args.has("text")) {
    text = args.get("text");
    source = "--text";
  } else if (args.has("text-file")) {
    source = "'" + args.get("text-file") + "'";
    text = core::readTextFile(args.get("text-file"));
  } else {
    throw Error("no input", "give --text T or --text-file F");
  }
  if (text.empty()) throw Error("the input text from " + source + " is empty", "give some text");
  core::requireUtf8(text, "the input text from " + source);
  return text;
}

std::vector<std::int32_t> parseIds(const std::string& list, std::int64_t vocab_size) {
  std::vector<std::int32_t> ids;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const auto comma = list.find(',', pos);
    const std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const std::int64_t v = parseInteger(item, "token id");
    if (v < 0 || v >= vocab_size) {
      throw Error("token id " + std::to_string(v) + " is outside the vocabulary of " +
                      std::to_string(vocab_size),
                  "use ids in 0.." + std::to_string(vocab_size - 1));
    }
    ids.push_back(static_cast<std::int32_t>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (ids.empty()) throw Error("--ids is empty", "give ids such as --ids 1,2,3");
  return ids;
}

std::string applyRuntimeOptions(const Args& args) {
  core::configureThreads(static_cast<int>(args.integer("threads", 0, 0, 1024)));
  return core::resolveDeviceName(args.get("device", "auto"));
}

}  // namespace monoscope::cli
