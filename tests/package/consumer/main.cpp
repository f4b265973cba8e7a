// A user's program: composes the reference model type and uses the tokenizer from the installed headers.
#include <hmoe/hmoe.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  using Model = hmoe::ReferenceModel<hmoe::dims::DeepSeekV2Lite>;
  static_assert(std::same_as<Model::dims, hmoe::dims::DeepSeekV2Lite>);
  std::printf("hmoe consumer: AMX %s\n", hmoe::AMX::available() ? "available" : "not available");
  if (argc > 1) {  // a GGUF with tokenizer metadata: round-trip a string
    const auto file = hmoe::gguf::File::open(argv[1]);
    const auto tok = hmoe::tokenizer::Tokenizer::from_gguf(file);
    const auto ids = tok.encode("hello world");
    if (tok.decode(ids) != "hello world") return 1;
    std::printf("tokenizer round trip ok (%zu ids)\n", ids.size());
  }
  return 0;
}
