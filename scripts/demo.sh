#!/bin/sh
# demo.sh MODEL [ADAPTER]: show pocketlm working on the real model: info, a chat-style generation,
# paraphrases by the base model and by the PAWS LoRA adapter fine-tuned with `pocketlm finetune`
# (models/paws-lora, committed), the speed, and then `pocketlm serve` for the browser page (unless
# DEMO_SERVE=0). DEMO_PORT sets the server's port (8080). DEMO_PRINT_CURL=1 prints only the curl
# command the demo shows for the HTTP API, and exits (tests/serve.test.sh runs that very line).
set -eu
m=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
a=${2:-models/paws-lora}
bin=build/pocketlm
port=${DEMO_PORT:-8080}
s1="In 1995 , the company moved its headquarters from Boston to New York ."
s2="The river flows through the town before it joins the sea near the old harbour ."
s3="She was born in Paris and later studied music in Vienna ."
# curl_line PORT TEXT: the request the demo suggests; the server wants a JSON content type (else 415)
curl_line() {
    printf "curl -s -H 'Content-Type: application/json' localhost:%s/v1/paraphrase -d '{\"text\": \"%s\"}'\n" \
        "$1" "$2"
}
if [ "${DEMO_PRINT_CURL:-0}" = 1 ]; then
    curl_line "$port" "$s3"
    exit 0
fi
echo "== pocketlm info -m $m"
$bin info -m "$m"
echo
p='<|im_start|>user
What is the capital of France? Answer in one sentence.<|im_end|>
<|im_start|>assistant
'
echo "== pocketlm generate (q8_0, greedy, streamed)"
$bin generate -m "$m" --dtype q8_0 --temp 0 -n 48 -p "$p" --json | sed 's/"tokens": \[[^]]*\], //'
echo
echo "== pocketlm paraphrase, base model (plain template, greedy)"
$bin paraphrase -m "$m" --dtype q8_0 --temp 0 "$s1" "$s2" "$s3"
echo
if [ -f "$a/adapter_config.json" ]; then
    echo "== pocketlm paraphrase --lora $a (the default, --diversity 0.5, chosen on held-out rows: control level 2, greedy, an output that copies its input retried with a growing share of its bigrams blocked)"
    $bin paraphrase -m "$m" --lora "$a" --dtype q8_0 "$s1" "$s2" "$s3"
    echo
    echo "== pocketlm paraphrase --lora $a --diversity 1 (control level 4, a copy retried with every bigram of the input blocked: more different)"
    $bin paraphrase -m "$m" --lora "$a" --dtype q8_0 --seed 1 --diversity 1 "$s1" "$s2" "$s3"
    echo
fi
echo "== pocketlm bench (q8_0)"
$bin bench -m "$m" --dtype q8_0 --reps 1
echo
# The browser: the page runs the merged fine-tuned model (make wasm web-model), the API the adapter.
if [ "${DEMO_SERVE:-1}" = 1 ] && [ -f "$a/adapter_config.json" ] && [ -f build/web/pocketlm.mjs ] &&
    [ -f build/paws-q8_0.gguf ]; then
    echo "== pocketlm serve -m $m --lora $a --model-file build/paws-q8_0.gguf --port $port"
    echo "   open http://127.0.0.1:$port/ and press Paraphrase (the model runs in the page); or"
    echo "   $(curl_line "$port" "$s3")"
    echo "   (Ctrl-C stops)"
    exec $bin serve -m "$m" --lora "$a" --dtype q8_0 --model-file build/paws-q8_0.gguf --port "$port"
fi
