# Builds a small feature database of the bundled demo for the UI tests (32,768 tokens).
file(REMOVE "${OUT}" "${OUT}.partial" "${OUT}-wal" "${OUT}-shm")
execute_process(
  COMMAND "${CLI}" index --model "${DEMO}/model" --sae "${DEMO}/sae"
          --corpus "${DEMO}/corpus/sample.tokens.safetensors" --tokens 32768 --out "${OUT}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "index failed (${rc}): ${err}")
endif()
