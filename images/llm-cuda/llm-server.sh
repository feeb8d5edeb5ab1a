#!/bin/sh
# Start llama-cpp-python's OpenAI-compatible server on the baked-in model.
# Environment (defaults in the image): PORT, LLM_MODEL_PATH, LLM_MODEL_ALIAS,
# LLM_N_CTX, LLM_GPU_LAYERS, LLM_THREADS, LLM_CHAT_TEMPLATE_FILE (a
# tokenizer_config.json-style file; empty: the GGUF's own chat template),
# LLM_CHAT_FORMAT (a llama-cpp-python chat format name; wins over the file),
# LLM_MLOCK (false: locking the model in RAM needs CAP_IPC_LOCK or a raised
# memlock ulimit, which a hardened container has not; the server would only
# warn and go on unlocked), LLM_INTERRUPT_REQUESTS (false: true lets any other
# request, a health probe too, cut a stream in progress short).
# Arguments are passed on to the server: `docker run IMAGE --verbose false`.
set -eu
model="${LLM_MODEL_PATH:-/models/gemma3-270m-q4_k_m.gguf}"
if [ ! -r "$model" ]; then
    echo "llm-server: model file $model is missing or unreadable" >&2
    exit 1
fi
alias="${LLM_MODEL_ALIAS:-$(basename "$model" .gguf)}"
threads="${LLM_THREADS:-2}"
template="${LLM_CHAT_TEMPLATE_FILE:-}"
# OpenMP would otherwise start one thread per visible CPU.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}"

if [ -n "${LLM_CHAT_FORMAT:-}" ]; then
    set -- --chat_format "$LLM_CHAT_FORMAT" "$@"
elif [ -n "$template" ]; then
    if [ ! -r "$template" ]; then
        echo "llm-server: LLM_CHAT_TEMPLATE_FILE=$template is missing or unreadable" >&2
        exit 1
    fi
    set -- --chat_format hf-tokenizer-config --hf_tokenizer_config_path "$template" "$@"
fi
exec python /usr/local/lib/mlstack/llm_server.py \
    --model "$model" --model_alias "$alias" \
    --host "${HOST:-0.0.0.0}" --port "${PORT:-8080}" \
    --n_ctx "${LLM_N_CTX:-2048}" --n_gpu_layers "${LLM_GPU_LAYERS:-0}" \
    --n_threads "$threads" --n_threads_batch "$threads" \
    --use_mlock "${LLM_MLOCK:-false}" \
    --interrupt_requests "${LLM_INTERRUPT_REQUESTS:-false}" \
    "$@"
