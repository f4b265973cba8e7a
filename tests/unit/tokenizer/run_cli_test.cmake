# cmake -P script: runs hmoe-tokenize (TOOL) on files from DATA (tests/data/tokenizer) and compares its output.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

# run(<name> <input> <expected> args...): the tool must exit 0 and write exactly <expected>.
function(run name input expected)
  execute_process(COMMAND ${TOOL} ${ARGN} INPUT_FILE ${input} OUTPUT_FILE ${WORK}/${name}.out
                  ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: hmoe-tokenize ${ARGN} < ${input} failed (${rc}): ${err}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/${name}.out ${expected} RESULT_VARIABLE diff)
  if(NOT diff EQUAL 0)
    file(STRINGS ${WORK}/${name}.out got)
    file(STRINGS ${expected} want)
    list(LENGTH want n)
    foreach(i RANGE ${n})
      list(GET got ${i} g)
      list(GET want ${i} w)
      if(NOT g STREQUAL w)
        math(EXPR line "${i} + 1")
        message(FATAL_ERROR "${name}: output differs from ${expected} at line ${line}:\n  got  ${g}\n  want ${w}")
      endif()
    endforeach()
    message(FATAL_ERROR "${name}: output differs from ${expected}")
  endif()
  message(STATUS "${name}: ok")
endfunction()

# \u escapes and surrogate pairs in, ids out (GGUF tokenizer).
run(escapes ${DATA}/cli_input.jsonl ${DATA}/cli_expected.jsonl --model ${DATA}/tiny/tokenizer.gguf)
# The whole corpus both ways (tokenizer.json): ids, then the ids back to the very same JSON lines.
run(encode ${DATA}/corpus.jsonl ${DATA}/tiny/expected.jsonl --tokenizer ${DATA}/tiny/tokenizer.json)
run(decode ${DATA}/tiny/expected.jsonl ${DATA}/corpus.jsonl --decode --tokenizer ${DATA}/tiny/tokenizer.json)

# --no-special: BOS written in the text is not id 0, and control tokens decode to nothing.
file(WRITE ${WORK}/bos.jsonl "\"<｜begin▁of▁sentence｜>hi\"\n")
execute_process(COMMAND ${TOOL} --model ${DATA}/tiny/tokenizer.gguf --no-special INPUT_FILE ${WORK}/bos.jsonl
                OUTPUT_VARIABLE plain RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR plain MATCHES "^\\[0," OR NOT plain MATCHES "^\\[[0-9,]+\\]\n$")
  message(FATAL_ERROR "--no-special: unexpected output '${plain}' (${rc})")
endif()
file(WRITE ${WORK}/ids.jsonl "[0,2049]\n")
execute_process(COMMAND ${TOOL} --model ${DATA}/tiny/tokenizer.gguf --decode --no-special INPUT_FILE ${WORK}/ids.jsonl
                OUTPUT_VARIABLE text RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT text STREQUAL "\"<｜Assistant｜>\"\n")
  message(FATAL_ERROR "--decode --no-special: unexpected output '${text}' (${rc})")
endif()

# Errors: the bad line is named, and the exit status is 1; bad arguments exit 2; --help exits 0.
file(WRITE ${WORK}/bad.jsonl "\"fine\"\n\"\\ud800\"\n")
execute_process(COMMAND ${TOOL} --tokenizer ${DATA}/tiny/tokenizer.json INPUT_FILE ${WORK}/bad.jsonl
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 1 OR NOT err MATCHES "line 2: byte 1: high surrogate" OR NOT out MATCHES "^\\[[0-9,]+\\]\n$")
  message(FATAL_ERROR "bad input: rc ${rc}, stdout '${out}', stderr '${err}'")
endif()
execute_process(COMMAND ${TOOL} --model a.gguf --tokenizer b.json ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 2 OR NOT err MATCHES "exactly one of")
  message(FATAL_ERROR "bad arguments: rc ${rc}, stderr '${err}'")
endif()
execute_process(COMMAND ${TOOL} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT help MATCHES "usage: hmoe-tokenize")
  message(FATAL_ERROR "--help: rc ${rc}")
endif()
message(STATUS "hmoe-tokenize: all checks passed")
