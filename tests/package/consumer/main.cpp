// A user's program: composes the reference model type from the installed headers.
#include <hmoe/hmoe.hpp>
#include <cstdio>

int main() {
  using Model = hmoe::ReferenceModel<hmoe::dims::DeepSeekV2Lite>;
  static_assert(std::same_as<Model::dims, hmoe::dims::DeepSeekV2Lite>);
  std::printf("hmoe consumer: AMX %s\n", hmoe::AMX::available() ? "available" : "not available");
  return 0;
}
