// monoscope-cli: the headless pipeline. Errors go to stderr with a non-zero exit.
#include <csignal>
#include <c10/util/Exception.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "util/error.h"
#include "util/runtime.h"

namespace {

using monoscope::cli::Args;

struct Command {
  const char* name;
  int (*run)(const Args&);
  const char* usage;
};

const std::vector<Command>& commands() {
  using namespace monoscope::cli;
  static const std::vector<Command> table = {
      {"tokenize", cmdTokenize, "--tokenizer DIR (--text T | --text-file F)"},
      {"logits", cmdLogits, "--model DIR (--text T | --text-file F | --ids 1,2,3) --out FILE.safetensors [--hook NAME]...\n"
       "       [--weights auto|float32|stored]  (stored: BF16/F16 matrices kept as stored)"},
      {"encode", cmdEncode, "--model DIR --sae DIR (--text T | --text-file F | --ids ...) --out FILE.safetensors"},
      {"generate", cmdGenerate,
       "--model DIR --prompt T --max-tokens N [--seed S] [--temperature X] [--top-p P]\n"
       "            [--sae DIR --clamp ID=VALUE|ID=10x... [--features FILE.db] --mode clamp|add|ablate --positions all|prompt|generated]"},
      {"top-features", cmdTopFeatures, "--acts FILE.safetensors [--position -1] [--count 10] [--ids-only true]"},
      {"import-gguf", cmdImportGguf, "--gguf FILE --out DIR [--dtype f32|bf16]   (a llama.cpp model as a Hugging Face folder)"},
      {"hub-list", cmdHubList, "[--limit N]   (the models and dictionaries in the Hugging Face cache, offline, with their --model/--sae spec)"},
      {"sae-convert", cmdSaeConvert, "--sae DIR --out DIR [--dtype f32|f16]   (re-save an SAE in the SAELens v6 layout)"},
      {"index", cmdIndex,
       "--model DIR --sae DIR --corpus PATH --tokens N --out FILE.db [--shard i/n] [--seed S] [--context C]\n"
       "            [--batch 8 --intervals 10 --per-interval 10 --top 20 --left 20 --right 8 --neighbours 10\n"
       "             --neighbour-method auto|exact|hnsw --umap true|false --umap-epochs N --skip-first true|false]"},
      {"merge", cmdMerge, "--out FILE.db SHARD.db..."},
      {"feature", cmdFeature, "FILE.db ID --json"},
      {"search", cmdSearch, "FILE.db (--prompt T [--negative T] | --text QUERY | --attribute T --target A --versus B) --top K --json"},
      {"score", cmdScore,
       "FILE.db --scorer concept|llm [--features IDS] [--endpoint URL --llm-model NAME --timeout S]\n"
       "            (the API key is read from $MONOSCOPE_LLM_API_KEY, or the variable named by --api-key-env)"},
      {"explain", cmdExplain,
       "FILE.db --endpoint URL --llm-model NAME [--features IDS] [--redo] [--top N] [--per-interval N] [--timeout S]\n"
       "            (LLM explanations, stored as new versions by llm:NAME/explain-v1; a rerun skips features done)"},
      {"build-corpus", cmdBuildCorpus, "[--manifest data/corpus/sources.json] --out DIR [--tokenizer DIR]"},
      {"sample-corpus", cmdSampleCorpus, "--corpus DIR|SHARD --tokens N --out FILE.tokens.safetensors   (whole documents from every stretch)"},
      {"train-tokenizer", cmdTrainTokenizer, "(--corpus DIR | --text-file F) --vocab-size N --out DIR"},
      {"train-lm", cmdTrainLm,
       "--corpus DIR --tokenizer DIR --out DIR [--d-model 256 --layers 4 --heads 4 --context 256\n"
       "            --batch-size 16 --steps N --warmup N --lr X --eval-every N --max-minutes M --seed S]"},
      {"train-sae", cmdTrainSae,
       "(--activations FILE.safetensors | --model DIR --hook NAME --corpus PATH) --arch standard|topk|batchtopk (--l1 X | --k K)\n"
       "            --d-sae N --tokens N --seed S --out DIR [--batch-size B --lr X --context C --skip-first true|false\n"
       "            --skip-end-of-text true|false --skip-sinks true|false --token-table FILE]   (sinks: rows over 10x the\n"
       "            median norm; with a token table the decoder learns each row less its token's row)"},
      {"token-means", cmdTokenMeans,
       "--activations HARVEST_DIR --out FILE.safetensors [--top 8192 --massive-factor 10]   (each frequent token's\n"
       "            mean activation, a token table for train-sae --token-table)"},
      {"harvest", cmdHarvest,
       "--model DIR|FILE.gguf --hook NAME --corpus PATH --tokens N --out DIR [--context 128 --skip-first true\n"
       "            --skip-end-of-text true --chunk-rows 65536 --batch 16 --seed S]   (activations to disk for train-sae --activations DIR)"},
      {"evaluate-sae", cmdEvaluateSae,
       "--model DIR --sae DIR --corpus PATH [--context C --rows 16384 --splice-batches 16 --seed S --skip-first true|false\n"
       "            --skip-end-of-text true|false]   (variance explained, L0 and CE loss recovered on held-out text)"},
      {"sae-threshold", cmdSaeThreshold,
       "--sae DIR --activations FILE|HARVEST_DIR --fraction F --out DIR [--rows 262144 --dtype f32|f16 --seed S\n"
       "            --refit true|false --refit-lambda 10]   (a TopK SAE keeps a feature only above F times its largest\n"
       "            activation on the rows; the decoder is refitted to the codes that remain)"},
      {"ground-truth", cmdGroundTruth, "[--d-in 256 --features 512 --active 5] --arch standard|topk|batchtopk (--l1 X | --k K) --d-sae N --tokens N"},
      {"build-demo", cmdBuildDemo, "[--work build/demo-work] [--out data/demo]"},
  };
  return table;
}

void printUsage(std::ostream& os) {
  os << "usage: monoscope-cli COMMAND [--option value]...\n\ncommands:\n";
  for (const auto& c : commands()) os << "  " << c.name << "  " << c.usage << "\n";
  os << "\nevery model command: --device auto|cpu|cuda  --threads N\n"
        "logits, encode, generate, search and index: --weights auto|float32|stored   (stored: BF16/F16\n"
        "  matrices kept as stored; BF16 ones multiply in BF16 on CUDA and on CPUs with BF16 instructions;\n"
        "  merge uses what the scans recorded)\n";
}

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// Core names settings by their field; on the command line they are options.
std::string inCliWords(std::string msg) {
  static const std::pair<const char*, const char*> kFields[] = {
      {"max_tokens", "--max-tokens"}, {"temperature", "--temperature"}, {"top_p", "--top-p"},
      {"batch_size", "--batch-size"}, {"total_tokens", "--tokens"},     {"d_sae", "--d-sae"},
      {"l1_coefficient", "--l1"},     {"architecture", "--arch"},       {"vocab_size", "--vocab-size"},
      {"seq_len", "--seq-len"},       {"total_steps", "--steps"},       {"warmup_steps", "--warmup"},
      {"lr", "--lr"},                 {"k", "--k"},                     {"threads", "--threads"},
      {"context", "--context"},       {"dead_window", "--dead-window"}, {"features", "--features"},
      {"weights", "--weights"},       {"encoder_precision", "--encoder-precision"},
      {"matryoshka_k", "--matryoshka-k"}, {"matryoshka", "--matryoshka"},
      {"token_table_side", "--token-table-side"}, {"token_table", "--token-table"}, {"top", "--top"}, {"massive_factor", "--massive-factor"}};
  for (const auto& prefix : {"", "LM training: ", "SAE training: ", "training option ", "index option ", "token-means option "}) {
    for (const auto& [field, flag] : kFields) {
      for (const char* after : {" ", ": "}) {
        const std::string head = std::string(prefix) + field + after;
        if (msg.rfind(head, 0) == 0) return std::string(flag) + after + msg.substr(head.size());
      }
    }
  }
  return msg;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace monoscope;
  core::tuneAllocator();
  // A full disk or a file-size limit makes writes fail (and say so, keeping the previous file)
  // instead of killing the process with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    printUsage(std::cout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const Command* cmd = nullptr;
  for (const auto& c : commands())
    if (command == c.name) cmd = &c;
  if (!cmd) {
    std::cerr << "monoscope-cli: unknown command '" << command << "' (run monoscope-cli --help)\n";
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << "usage: monoscope-cli " << cmd->name << " " << cmd->usage << "\n";
      return 0;
    }
  }
  try {
    const cli::Args args(argc, argv, 2);
    return cmd->run(args);
  } catch (const core::Error& e) {
    std::cerr << "monoscope-cli " << command << ": error: " << inCliWords(e.what()) << "\n";
  } catch (const c10::Error& e) {
    std::cerr << "monoscope-cli " << command << ": error: " << firstLine(e.what_without_backtrace()) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "monoscope-cli " << command << ": error: " << firstLine(e.what()) << "\n";
  }
  return 1;
}
