/// \file
/// \brief doctest entry point of test_quant.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
