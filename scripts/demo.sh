#!/bin/sh
# demo.sh MODEL: show pocketlm working on the real model: info, a chat-style generation, paraphrases.
set -eu
m=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
bin=build/pocketlm
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
echo "== pocketlm paraphrase (base model: not fine-tuned yet, plain template)"
$bin paraphrase -m "$m" --dtype q8_0 --seed 1 \
    "The quick brown fox jumps over the lazy dog ." \
    "In 1995 , the company moved its headquarters from Boston to New York ."
echo
echo "== pocketlm bench (q8_0)"
$bin bench -m "$m" --dtype q8_0 --reps 1
