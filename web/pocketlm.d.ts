// pocketlm.d.ts: the API of pocketlm.js, the WebAssembly build of pocketlm for node and browsers.
//
//     import { PocketLM } from 'pocketlm';
//     const lm = await PocketLM.load(url, { dtype: 'q8_0', onProgress: (p) => bar(p.loaded / p.total) });
//     const r = await lm.generate('Once upon a time', { maxTokens: 64, onToken: (t) => out.append(t) });
//     lm.free();

/** Where a GGUF model (or an adapter file) comes from. */
export type Source =
  | string          // a URL (fetched with streaming progress); in node also a file path
  | URL
  | Blob            // a File from <input type=file> or drag and drop
  | ArrayBuffer
  | Uint8Array;

export interface Progress {
  loaded: number;   // bytes read so far
  total: number;    // bytes in all, 0 when unknown
  file: string;     // 'model', or the adapter file name
}

/**
 * A PEFT LoRA adapter: its files by name, or a base URL / (node) directory that holds them
 * (tokenizer.json is optional: present when the adapter adds tokens).
 */
export type LoraSource =
  | string
  | URL
  | {
      'adapter_config.json': Source;
      'adapter_model.safetensors': Source;
      'tokenizer.json'?: Source;
    };

export interface LoadOptions {
  /** Called as the file arrives. */
  onProgress?: (p: Progress) => void;
  /**
   * Threads, the caller included. > 1 picks the threaded build, which needs SharedArrayBuffer:
   * in a browser only when crossOriginIsolated (COOP same-origin + COEP require-corp), else 1 is
   * used. Default: browser min(4, hardwareConcurrency) when cross-origin isolated, else 1; node 1.
   * At most 17.
   */
  threads?: number;
  /** In-memory dtype of the linear weights: 'auto' (default: each weight as the file stores it
   * where a kernel exists: a Q4_1 file stays Q4_1, its Q8_0 embedding Q8_0, Q4_K and Q5_K stay
   * as they are; F16/BF16 kept 16-bit; other types q8_0), or one for all: 'q8_0' (~4x smaller
   * than f32, faster), 'f32', 'f16', 'bf16' (half of f32's memory, its results exactly), 'q4_0',
   * 'q4_1', 'q5_0', 'q5_1', 'q6_k' (weights whose columns are a multiple of 256; others q8_0),
   * 'q4_k', 'q5_k' (the same; others q4_1, q5_1). */
  dtype?: 'q8_0' | 'f32' | 'f16' | 'bf16' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q6_k' | 'q4_k' | 'q5_k' | 'auto';
  /** An adapter applied at run time (not merged). */
  lora?: LoraSource;
  /** Positions held in the KV cache; default min(2048, the model's context). */
  nCtx?: number;
  /** How the KV cache keeps keys and values: 'f32' (default) or 'f16' (IEEE half: half the
   * cache's memory; attention reads the halves as their exact f32 values). */
  kvType?: 'f32' | 'f16';
  /**
   * Which SIMD build: 'auto' (default) takes the relaxed-SIMD build when the engine validates
   * relaxed-SIMD instructions (feature detection), else the SIMD128 one; 'relaxed' (an error where
   * the engine lacks it) or 'simd128' force one. q8_0 results are the same bits in both.
   */
  simd?: 'auto' | 'relaxed' | 'simd128';
}

export interface GenerateOptions {
  /** New tokens at most (default 256). */
  maxTokens?: number;
  /** 0 = greedy (default 0). */
  temperature?: number;
  /** 0 = off (default). */
  topK?: number;
  /** 1 = off (default). */
  topP?: number;
  /** 0 = off (default). */
  minP?: number;
  /** 1 = off (default); Hugging Face semantics. */
  repetitionPenalty?: number;
  /** Integer below 2^53; default random. Same seed, same options, same prompt: same text. */
  seed?: number;
  /** Strings that end generation; the text is cut before the first one found. */
  stop?: string[];
  /** Token ids that end generation (at most 16); default the model's eos_token_id. */
  stopTokens?: number[];
  /**
   * Dynamic blocking (Niu et al. 2021): after the output emits a token of the source (paraphrase:
   * the text; generate: the prompt), each word-starting token that followed it there is lowered by
   * copyPenalty logits for the next step; Infinity blocks it. 0 = off (generate's default).
   */
  copyPenalty?: number;
  /** The share of the source's bigrams that block, drawn from the seed (default 1: all). */
  copyBlock?: number;
  /**
   * Sample this many outputs and keep the best by mean log-probability minus
   * rerankWeight * BLEU(output, source) / 100 (about candidates times the decoding; the text comes
   * in one piece at the end). 1 = off (generate's default).
   */
  candidates?: number;
  /** The weight of the overlap with the source in that choice (>= 0). */
  rerankWeight?: number;
  /**
   * An output that copies the source (the same words) is decoded again: first copyDeviate times
   * as a deviation (its own tokens up to its k-th least sure choice, the runner-up there, then
   * decoding on; only the tokens after it are decoded again), then with a share copyBlock of the
   * source's bigrams lowered by copyRetry logits, the share doubled while the output still copies
   * and every bigram at the third such retry; that is the output (the text comes in one piece at
   * the end). 0 = off (generate's default).
   */
  copyRetry?: number;
  /** With copyRetry: the deviations a copy gets before its bigram retries (0-64; paraphrase: 2
   * for diversity in [0.4, 1), else 0; generate's default 0). */
  copyDeviate?: number;
  /**
   * true: the output never adds a number, or a capitalized word other than its first, that the
   * source lacks (tokens that would are set aside while decoding). paraphrase: true at every
   * diversity; generate: false.
   */
  keepFacts?: boolean;
  /**
   * paraphrase only: 0 = stay close to the text, 1 = as different as it can while keeping the
   * meaning (default paraphraseDefaults.diversity). Sets the decoding options above and the
   * temperature as taskSettings(diversity) shows; options given alongside override them.
   */
  diversity?: number;
  /** Checked before every token: when aborted, generate resolves with stopReason 'abort'. */
  signal?: AbortSignal;
  /**
   * Each new piece of text as it is produced: whole UTF-8 characters only, and never the
   * beginning of a stop string. The pieces concatenate to the result's text.
   */
  onToken?: (piece: string) => void;
  /**
   * Reuse the KV cache of the previous call for the longest common prefix of ids (default true;
   * results are the same either way, only faster).
   */
  cache?: boolean;
}

export type StopReason =
  | 'length'    // maxTokens reached
  | 'token'     // a stop token (eos) was sampled
  | 'string'    // a stop string appeared
  | 'context'   // the KV cache is full
  | 'abort';    // the signal was aborted

export interface GenerateResult {
  text: string;           // the generated text (without a stop string or stop token)
  tokens: number[];       // generated ids, without a final stop token
  stopReason: StopReason;
  promptTokens: number;   // ids of the prompt
  cachedTokens: number;   // of which were already in the KV cache (not recomputed)
  generatedTokens: number; // tokens sampled, a final stop token included
  sampledTokens: number;  // tokens sampled over every candidate (the decoding work)
  candidates: number;     // candidates sampled (1 without reranking)
  prefillTokS: number;    // prompt tokens computed per second
  decodeTokS: number;     // sampled tokens per second
}

export type TaskSettings = Readonly<Required<Pick<GenerateOptions,
  'maxTokens' | 'temperature' | 'topK' | 'topP' | 'minP' | 'repetitionPenalty' | 'copyPenalty' |
  'copyBlock' | 'candidates' | 'rerankWeight' | 'copyRetry' | 'copyDeviate' | 'keepFacts' |
  'diversity'>>>;

export interface ModelConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  maxPositionEmbeddings: number;
  bosTokenId: number;     // -1 when absent
  eosTokenId: number;     // -1 when absent
}

export class PocketLM {
  /** Load a GGUF model (the single-file format used on the web). */
  static load(source: Source, options?: LoadOptions): Promise<PocketLM>;

  readonly config: ModelConfig;
  /** The dtype most of the weights are kept in ('auto' resolves to one of the others). */
  readonly dtype: 'q8_0' | 'f32' | 'f16' | 'bf16' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q6_k' | 'q4_k' | 'q5_k';
  readonly threads: number;
  /** The module loaded: 'pocketlm.mjs', 'pocketlm-mt.mjs', 'pocketlm-relaxed.mjs' or 'pocketlm-relaxed-mt.mjs'. */
  readonly build: string;
  /** The C library's kernel path (plm_kernel_path): 'relaxed-dot' (the relaxed build, where the
   *  engine's i32x4 dot-add is one instruction: x86 VNNI, arm64 sdot), 'relaxed' or 'wasm'
   *  (SIMD128). */
  readonly kernelPath: string;
  readonly hasTokenizer: boolean;
  readonly nCtx: number;
  /** The KV cache's element type (LoadOptions.kvType). */
  readonly kvType: 'f32' | 'f16';
  readonly weightBytes: number;  // bytes of weights in memory
  /** The model's name from its file (GGUF general.name), '' when it has none. */
  readonly name: string;
  /** The LoRA adapter merged into the file (GGUF pocketlm.adapter, written by
   *  `pocketlm export --lora`), '' when none; an adapter given to load() is not included. */
  readonly adapter: string;
  readonly loadSeconds: number;  // read + convert + session
  readonly readSeconds: number;  // of which reading/fetching the file
  /** Current size of the wasm heap in bytes (it grows, never shrinks). */
  readonly memoryBytes: number;
  /** The bytes of that heap allocated now (the model, sessions, adapters, a training run); the
   *  rest is free for reuse: a finished or freed training run gives all of its memory back. */
  readonly memoryInUseBytes: number;
  /**
   * The options paraphrase starts from, as the library defines the task (the same as
   * `pocketlm paraphrase` and POST /v1/paraphrase): taskSettings at the default diversity.
   */
  readonly paraphraseDefaults: TaskSettings;
  /**
   * The options paraphrase starts from at diversity (0 … 1), as the library maps it
   * (plm_paraphrase_diversity): maxTokens 64, topK 8, and the temperature, blocking and candidates
   * of that diversity. Throws for a diversity outside [0, 1].
   */
  taskSettings(diversity?: number): TaskSettings;

  /**
   * Continue prompt (text, or token ids). Calls on one PocketLM run one after another (each
   * waits for the previous one).
   */
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): Promise<GenerateResult>;
  /**
   * Paraphrase text with the task template ("Rephrase the following:\nInput: …\nOutput: 
   * <|OUTPUT_START|>"), stopping at <|OUTPUT_END|>; a model without those tokens gets the plain
   * template, leading white space dropped, and stops at the first newline after some text.
   * Options default to taskSettings(options.diversity) (an option given as undefined too).
   * Rejects with an Error when text is empty or only white space, or diversity is not in [0, 1].
   */
  paraphrase(text: string, options?: GenerateOptions): Promise<GenerateResult>;
  /** Token ids of text (no BOS/EOS added), as Hugging Face tokenizers would give them. */
  tokenize(text: string): Int32Array;
  /** Text of ids. */
  detokenize(ids: ArrayLike<number>): string;
  /** Id of a token given by its exact text, or -1. */
  tokenId(text: string): number;
  /**
   * Low level: run ids (from position 0 unless reset is false) and return a copy of the last
   * position's logits (vocabulary size, adapter tokens included).
   */
  decode(ids: ArrayLike<number>, options?: { reset?: boolean }): Promise<Float32Array>;
  /** Forget the KV cache. */
  reset(): Promise<void>;
  /** Free the model, its session and adapter, and the threaded build's workers. */
  free(): void;
}

// ---- fine-tuning (LoRA training in the wasm module: src/finetune.c's run, one step at a time) ----

/** A training example: the task template's input and the output the model should give. */
export interface Pair { input: string; output: string; }

/**
 * Training data: pairs, or a file's bytes (PAWS TSV: id, sentence1, sentence2, label, label-1
 * rows used and also reversed; or JSONL of {"input", "output"}; the format from the content).
 */
export type TrainData = Pair[] | Source;

export interface FinetuneOptions {
  data: TrainData;
  /** The data's name in bad-row messages ("name:line: why"); 'data' by default. */
  dataName?: string;
  rank?: number;          // LoRA r (8)
  alpha?: number;         // lora_alpha (16)
  dropout?: number;       // lora_dropout (0.05)
  /** 'q_proj,v_proj' (default), 'all', or a list of q/k/v/o/gate/up/down_proj. */
  targets?: string | string[];
  lr?: number;            // peak learning rate (2e-4), linear warmup then cosine decay to 0
  warmupRatio?: number;   // warmup share of the steps (0.03)
  /** Passes over the data (1); with maxSteps and no epochs, the steps alone decide. */
  epochs?: number;
  maxSteps?: number;      // stop after this many optimizer steps (0: epochs decide)
  batch?: number;         // examples per micro-batch (8)
  accum?: number;         // micro-batches per optimizer step (1)
  seed?: number;          // adapter init, dropout, split and batch order (1234)
  /** Share of the data held out (0.05), whole groups of rows sharing a sentence; 0: none. */
  evalFrac?: number;
  evalEvery?: number;     // held-out loss every N steps (0: at the end only)
  maxLen?: number;        // longest example in tokens (256); longer rows are bad rows
  reverse?: boolean;      // PAWS: also train each pair reversed (true)
  /** Continue a run from this checkpoint (with the same data and settings): bit for bit. */
  resume?: Checkpoint;
  /** finetune only: called after every step. */
  onProgress?: (p: TrainProgress, run: TrainRun) => void;
  /** finetune only: called once the data is read and the trainer is ready, before step 1. */
  onStart?: (run: TrainRun) => void;
  /** finetune only: a checkpoint every N steps (0: none) and on abort, given to onCheckpoint. */
  checkpointEvery?: number;
  onCheckpoint?: (c: Checkpoint) => void | Promise<void>;
  /** finetune only: stop after the current step; finetune rejects with an AbortError whose
   *  .checkpoint resumes the run. */
  signal?: AbortSignal;
}

/** One optimizer step, as a line of metrics.jsonl. */
export interface TrainProgress {
  step: number; totalSteps: number;
  epoch: number;          // fractional
  loss: number;           // mean train loss of the step (nats per target token)
  evalLoss: number | null; // held-out loss when measured at this step
  lr: number; gradNorm: number;
  tokS: number;           // training tokens per second
  elapsed: number; eta: number; // seconds
  tokens: number;         // tokens trained on so far
}

export interface TrainInfo {
  rows: number; notLabel1: number;
  bad: number;            // bad rows skipped (listed in badRows)
  trainExamples: number; evalExamples: number;
  stepsPerEpoch: number; totalSteps: number;
  step: number;           // steps done when the run began (a resumed run: its checkpoint's)
}

/** A bad data row: its line (1-based) and why. */
export interface BadRow { line: number; message: string; }

/** What a run needs to continue bit for bit: its checkpoint/ directory and metrics.jsonl. */
export interface Checkpoint { step: number; files: Record<string, Uint8Array>; }

/** Files by name: adapter_config.json, adapter_model.safetensors, tokenizer.json, tokenizer_config.json,
 *  and beside them metrics.jsonl, loss.svg, data_report.json, heldout.jsonl | heldout.tsv. */
export type AdapterFiles = Record<string, Uint8Array>;

/** A fine-tuning run (lm.trainer): the data read, the trainer's memory allocated. */
export class TrainRun {
  readonly info: TrainInfo;
  /** Every bad row of the data, in file order (never silently dropped). */
  readonly badRows: BadRow[];
  /** One object per step so far, as metrics.jsonl. */
  readonly metrics: Array<Omit<TrainProgress, 'totalSteps' | 'eta' | 'evalLoss'> & { evalLoss?: number }>;
  readonly stepsDone: number;
  readonly done: boolean;
  /** One optimizer step; null when the run is over. */
  step(): Promise<TrainProgress | null>;
  checkpoint(): Promise<Checkpoint>;
  /** The adapter and the files `pocketlm finetune` writes beside it, as they are now. */
  save(): Promise<AdapterFiles>;
  /** The adapter as it is now, loaded for the model. */
  adapter(): Promise<Adapter>;
  /** The training loss chart (loss.svg) so far, as SVG text. */
  lossChart(options?: { width?: number; height?: number }): string;
  /** Release the trainer's memory and files. */
  free(): void;
}

/** A LoRA adapter loaded for one PocketLM. */
export class Adapter {
  /** Its files by name (PEFT: `pocketlm --lora DIR` and Python PEFT load them). */
  save(): Promise<AdapterFiles>;
  free(): void;
}

export interface LossChart {
  step: ArrayLike<number>; loss: ArrayLike<number>;
  evalStep?: ArrayLike<number>; evalLoss?: ArrayLike<number>;
  stepsPerEpoch?: number; width?: number; height?: number;
}

export interface PocketLM {
  /** The library's fine-tuning defaults (plm_finetune_default_params). */
  readonly trainDefaults: Required<Pick<FinetuneOptions, 'rank' | 'alpha' | 'dropout' | 'lr' |
    'epochs' | 'batch' | 'accum' | 'seed' | 'evalFrac' | 'warmupRatio' | 'maxLen' | 'reverse'>> &
    { targets: string };
  /** Fine-tune a LoRA adapter on data; resolves to it (not yet used for generation: useAdapter). */
  finetune(options: FinetuneOptions): Promise<Adapter>;
  /** Begin a run and drive it yourself (step, checkpoint, save, free). Rejects when the data has
   *  no usable row (the Error has .badRows). */
  trainer(options: FinetuneOptions): Promise<TrainRun>;
  /** A PEFT adapter for this model (files by name, or a URL / node directory holding them). */
  loadAdapter(files: LoraSource | AdapterFiles): Promise<Adapter>;
  /** Generate with adapter from now on; null: without (the base, or the adapter given to load). */
  useAdapter(adapter: Adapter | null): Promise<void>;
  /** A new PocketLM (f32 weights) with the adapter folded in; it shares this one's module:
   *  free it first. */
  merge(adapter: Adapter): Promise<PocketLM>;
  /** plm_loss_chart_svg as SVG text. */
  lossChart(chart: LossChart): string;
}

/** True when this engine runs the relaxed-SIMD builds (WebAssembly.validate of a probe module). */
export function relaxedSimd(): boolean;

export default PocketLM;
