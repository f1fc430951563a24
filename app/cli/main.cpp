// monoscope-cli: the headless pipeline. Errors go to stderr with a non-zero exit.
#include <c10/util/Exception.h>

#include <cstring>
#include <iostream>
#include <string>

#include "args.h"
#include "commands.h"
#include "util/error.h"

namespace {

const char* kUsage = R"(usage: monoscope-cli COMMAND [--option value]...

commands:
  tokenize  --tokenizer DIR (--text T | --text-file F)
  logits    --model DIR (--text T | --text-file F | --ids 1,2,3) --out FILE.safetensors [--hook NAME]...
  encode    --model DIR --sae DIR (--text T | --text-file F | --ids ...) --out FILE.safetensors
  generate  --model DIR --prompt T --max-tokens N [--seed S] [--temperature X] [--top-p P]
            [--sae DIR --clamp ID=VALUE... --mode clamp|add|ablate --positions all|prompt|generated]
  top-features --acts FILE.safetensors [--position -1] [--count 10] [--ids-only true]
  sae-convert --sae DIR --out DIR   (re-save an SAE in the SAELens v6 layout)
  build-corpus [--manifest data/corpus/sources.json] --out DIR [--tokenizer DIR]
  train-tokenizer (--corpus DIR | --text-file F) --vocab-size N --out DIR
  train-lm --corpus DIR --tokenizer DIR --out DIR [--d-model 256 --layers 4 --heads 4 --context 256
           --batch-size 16 --steps N --warmup N --lr X --eval-every N --max-minutes M --seed S]
  build-demo [--work build/demo-work] [--out data/demo]
  train-sae (--activations FILE.safetensors | --model DIR --hook NAME --corpus PATH) --arch standard|topk (--l1 X | --k K) --d-sae N --tokens N --seed S --out DIR
  ground-truth [--d-in 256 --features 512 --active 5] --arch standard|topk (--l1 X | --k K) --d-sae N --tokens N

every command: --device auto|cpu|cuda  --threads N
)";

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  using namespace monoscope;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    const cli::Args args(argc, argv, 2);
    if (command == "tokenize") return cli::cmdTokenize(args);
    if (command == "logits") return cli::cmdLogits(args);
    if (command == "encode") return cli::cmdEncode(args);
    if (command == "generate") return cli::cmdGenerate(args);
    if (command == "sae-convert") return cli::cmdSaeConvert(args);
    if (command == "top-features") return cli::cmdTopFeatures(args);
    if (command == "train-sae") return cli::cmdTrainSae(args);
    if (command == "ground-truth") return cli::cmdGroundTruth(args);
    if (command == "build-corpus") return cli::cmdBuildCorpus(args);
    if (command == "train-tokenizer") return cli::cmdTrainTokenizer(args);
    if (command == "train-lm") return cli::cmdTrainLm(args);
    if (command == "build-demo") return cli::cmdBuildDemo(args);
    std::cerr << "monoscope-cli: unknown command '" << command << "' (run monoscope-cli --help)\n";
    return 2;
  } catch (const core::Error& e) {
    std::cerr << "monoscope-cli " << command << ": error: " << e.what() << "\n";
  } catch (const c10::Error& e) {
    std::cerr << "monoscope-cli " << command << ": error: " << firstLine(e.what_without_backtrace()) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "monoscope-cli " << command << ": error: " << firstLine(e.what()) << "\n";
  }
  return 1;
}
