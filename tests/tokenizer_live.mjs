// tokenizer_live.mjs: pocketlm's tokenizer against the reference, transformers.js (pinned in
// package.json), on thousands of generated texts. The texts come from a seeded PRNG, so every run
// tests the same ones: PAWS sentences, random characters from many scripts, white space runs,
// digits, punctuation, contractions, emoji with ZWJ, and added tokens spliced in (SmolLM2's, and
// the tokenizer's own when it is another one).
// Checks, each over every text:
//   1. ids: `pocketlm tokenize --jsonl` == tokenizer.encode(text, {add_special_tokens: false});
//   2. text: `pocketlm tokenize --decode --jsonl` of those ids == tokenizer.decode(ids) (without
//      clean_up_tokenization_spaces, a display option pocketlm does not have);
//   3. round trip: pocketlm's decode of its own ids == the text (after NFC when the tokenizer's
//      normalizer is NFC; with U+2581 as ' ' for SentencePiece), where every byte has a token;
//   4. invalid UTF-8: raw bytes on stdin == encode(new TextDecoder().decode(bytes)), i.e. each
//      maximal invalid subpart read as U+FFFD, the decision documented in src/tokenizer_encode.c;
//   5. with a GGUF of the same tokenizer (tests/tokenizer_gguf.py): its ids == check 1's.
// transformers.js returns `undefined` for a byte whose token is missing from the vocabulary
// (SmolLM2 lacks 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5..0xFF); pocketlm,
// like Hugging Face's Rust tokenizers, gives no id there, so those entries are dropped before
// comparing (and counted).
// Usage: node tests/tokenizer_live.mjs [N [DIR [GGUF]]]   (env POCKETLM = the binary, default
// build/pocketlm; DIR holds tokenizer.json and tokenizer_config.json, default SmolLM2's)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, env } from '@huggingface/transformers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tokDir = path.resolve(process.argv[3] || path.join(root, 'data', 'smollm2-paraphraser'));
const ggufFile = process.argv[4];
const pawsFile = path.join(root, 'data', 'paws', 'test.tsv');
const bin = process.env.POCKETLM || path.join(root, process.env.BUILD || 'build', 'pocketlm');
const N = Number(process.argv[2] || 6000);
const N_INVALID = 60;

// ---- seeded generator ----

function mulberry32(seed) {
    return () => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
const rand = mulberry32(20240611);
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];

// Code point ranges [lo, hi] of many scripts, symbols, digits of other scripts, marks.
const SCRIPTS = [
    [0x20, 0x7e], [0xa0, 0xff], [0x100, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x530, 0x58f],
    [0x591, 0x5f4], [0x600, 0x6ff], [0x660, 0x669], [0x900, 0x97f], [0x966, 0x96f], [0x980, 0x9ff],
    [0xe00, 0xe7f], [0x10a0, 0x10ff], [0x1100, 0x11ff], [0x1e00, 0x1eff], [0x2000, 0x206f],
    [0x2070, 0x209f], [0x20a0, 0x20c0], [0x2100, 0x218f], [0x2190, 0x22ff], [0x2460, 0x24ff],
    [0x2500, 0x257f], [0x3000, 0x303f], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
    [0xfb00, 0xfdff], [0xfe00, 0xfe0f], [0xff00, 0xffef], [0x10000, 0x1007f], [0x1d400, 0x1d7ff],
    [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0x300, 0x36f], [0xe0000, 0xe007f],
];
const SPACES = [' ', '  ', '   ', '\n', '\n\n', '\n\n\n', '\t', ' \n', '\r\n', '\u00a0', '\u3000',
    '\u2009', '\u2028', '\u0085', '\ufeff', '\u200b', '\u000b', '\f', ' \t '];
const PUNCT = '.,;:!?\'"()[]{}<>-_=+*/\\|@#$%^&~`'.split('');
const WORDS = ["it's", "don't", "we're", "I've", "I'm", "you'll", "he'd", "'s", "'t", "'re",
    "'ve", "'m", "'ll", "'d", "O'Neil", "rock'n'roll", "'S", "''", "'"];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '❤️', '🇫🇷', '🤷‍♀️', '🧑🏿‍💻', '✈️', '🍕'];
let ADDED = ['<|OUTPUT_START|>', '<|OUTPUT_END|>', '<|im_start|>', '<|im_end|>', '<|endoftext|>',
    '<|OUTPUT_START', '<|im_', '<reponame>', '<empty_output>'];

const paws = readFileSync(pawsFile, 'utf8').split('\n').slice(1).filter(Boolean)
    .flatMap((l) => l.split('\t').slice(1, 3));

function randomChars(k) {
    let s = '';
    for (let i = 0; i < k; i++) {
        const [lo, hi] = pick(SCRIPTS);
        s += String.fromCodePoint(lo + int(hi - lo + 1));
    }
    return s;
}

function anyCodePoints(k) { // the whole code space, assigned or not, without surrogates
    let s = '';
    for (let i = 0; i < k; i++) {
        let cp = int(0x110000);
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;
        s += String.fromCodePoint(cp);
    }
    return s;
}

const FRAGMENTS = [
    () => pick(paws),
    () => pick(paws).slice(int(40)),
    () => randomChars(1 + int(12)),
    () => anyCodePoints(1 + int(4)),
    () => pick(SPACES),
    () => pick(SPACES).repeat(1 + int(5)),
    () => String(int(1e9)),
    () => '0123456789'.slice(int(10)) + ' ' + (rand() * 1e4).toFixed(int(4)),
    () => Array.from({ length: 1 + int(5) }, () => pick(PUNCT)).join(''),
    () => pick(WORDS),
    () => pick(EMOJI),
    () => pick(ADDED),
    () => ' ' + pick(ADDED) + ' ',
    () => '\ud800', // a lone surrogate: the C side reads it as U+FFFD (asC)
];

function makeText(i) {
    if (i === 0) return '';
    if (i === 1) return 'a'.repeat(3000);
    if (i === 2) return ' '.repeat(100) + '1'.repeat(100);
    let s = '';
    const parts = i % 400 === 3 ? 400 : 1 + int(10); // some long texts: pocketlm's word cache
    for (let k = 0; k < parts; k++) s += pick(FRAGMENTS)();
    return s;
}

function makeInvalid() { // valid text with invalid UTF-8 bytes and truncated sequences spliced in
    const bad = [[0x80], [0xbf], [0xc0, 0xaf], [0xc2], [0xe0, 0x80, 0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80],
        [0xf0, 0x9f, 0x98], [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xff], [0xfe, 0xfe], [0xf0, 0x80]];
    const parts = [];
    for (let k = 1 + int(6); k > 0; k--) {
        parts.push(Buffer.from(pick([() => pick(paws).slice(0, 30), () => randomChars(3), () => ' ',
            () => pick(EMOJI), () => pick(ADDED)])(), 'utf8'));
        parts.push(Buffer.from(rand() < 0.3 ? [0x80 + int(128)] : pick(bad)));
    }
    return Buffer.concat(parts);
}

// ---- run both sides ----

function run(args, input, tokPath = tokDir) {
    const r = spawnSync(bin, ['tokenize', '-t', tokPath, ...args], { input, maxBuffer: 1 << 30 });
    if (r.error) throw r.error;
    if (r.status !== 0) {
        console.error(`FAIL: ${bin} tokenize ${args.join(' ')} exited ${r.status}\n${r.stderr}`);
        process.exit(1);
    }
    return r.stdout.toString('utf8');
}

// asC: the text pocketlm reads: its UTF-8 has no lone surrogates, U+FFFD stands for each (as
// TextEncoder writes them). transformers.js would treat a lone surrogate as a character of its own
// (Gemma: not in the vocabulary, so byte fallback), which no UTF-8 input can produce.
const asC = (t) => Buffer.from(t, 'utf8').toString('utf8');

let dropped = 0;
function reference(tok, text, whole = []) {
    const ids = tok.encode(asC(text), { add_special_tokens: false });
    const kept = ids.filter((id) => id !== undefined);
    dropped += ids.length - kept.length;
    whole.push(kept.length === ids.length);
    return kept;
}

function report(what, texts, want, got) {
    const bad = [];
    for (let i = 0; i < want.length; i++) if (want[i] !== got[i]) bad.push(i);
    for (const i of bad.slice(0, 5)) {
        console.error(`MISMATCH ${what} #${i}: text ${JSON.stringify(texts[i]).slice(0, 300)}`);
        console.error(`  want ${want[i]?.slice(0, 400)}\n  got  ${got[i]?.slice(0, 400)}`);
    }
    console.log(`${what}: ${want.length - bad.length}/${want.length} equal`);
    return bad.length;
}

async function main() {
    env.allowRemoteModels = false;
    env.localModelPath = path.dirname(tokDir);
    const tok = await AutoTokenizer.from_pretrained(path.basename(tokDir));
    const json = JSON.parse(readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf8'));
    if (json.added_tokens.some((a) => !ADDED.includes(a.content))) // another tokenizer: its own too
        ADDED = ADDED.concat(json.added_tokens.map((a) => a.content));
    // what decode(encode(text)) gives back: NFC's form, or SentencePiece's U+2581 read as ' '
    const normal = json.normalizer?.type === 'NFC' ? (t) => t.normalize('NFC')
        : json.model.byte_fallback ? (t) => t.replaceAll('\u2581', ' ') : (t) => t;
    const dir = mkdtempSync(path.join(tmpdir(), 'plm-tok-'));
    let failures = 0;
    try {
        const texts = Array.from({ length: N }, (_, i) => makeText(i));
        const whole = [];
        const wantIds = texts.map((t) => reference(tok, t, whole));
        const inFile = path.join(dir, 'in.jsonl');
        writeFileSync(inFile, texts.map((t) => JSON.stringify(t)).join('\n') + '\n');
        const gotIds = run(['--jsonl', inFile]).split('\n').slice(0, N);
        const want = wantIds.map((a) => JSON.stringify(a));
        failures += report('encode', texts, want, gotIds);

        writeFileSync(path.join(dir, 'ids.jsonl'), want.join('\n') + '\n');
        const gotText = run(['--decode', '--jsonl', path.join(dir, 'ids.jsonl')]).split('\n').slice(0, N);
        const wantText = wantIds.map((a) => JSON.stringify(a.length
            ? tok.decode(a, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : ''));
        failures += report('decode', texts, wantText, gotText.map((l) => JSON.stringify(JSON.parse(l))));

        writeFileSync(path.join(dir, 'own.jsonl'), gotIds.join('\n') + '\n');
        const back = run(['--decode', '--jsonl', path.join(dir, 'own.jsonl')]).split('\n').slice(0, N);
        const kept = texts.map((_, i) => i).filter((i) => whole[i]);
        failures += report('round trip', kept.map((i) => texts[i]),
            kept.map((i) => JSON.stringify(normal(asC(texts[i])))),
            kept.map((i) => JSON.stringify(JSON.parse(back[i]))));

        const raw = Array.from({ length: N_INVALID }, makeInvalid);
        const wantBad = raw.map((b) => JSON.stringify(reference(tok, new TextDecoder().decode(b))));
        const gotBad = raw.map((b) => run([], b).trim());
        failures += report('invalid UTF-8', raw.map((b) => b.toString('hex')), wantBad, gotBad);

        if (ggufFile)
            failures += report('GGUF encode', texts, want,
                run(['--jsonl', inFile], undefined, ggufFile).split('\n').slice(0, N));
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
    console.log(`(${dropped} reference ids were undefined: bytes missing from the vocabulary)`);
    console.log(`tokenizer_live ${path.basename(path.dirname(tokDir))}/${path.basename(tokDir)}: ` +
        `${failures ? 'FAILED' : 'ok'} (${N} texts, ${N_INVALID} invalid UTF-8${ggufFile ? ', GGUF' : ''})`);
    process.exit(failures ? 1 : 0);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
