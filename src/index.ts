// Fathom's public API. Only the names exported here are available to users.

// Tensors and creation
export { Tensor } from "./core/tensor.js";
export type { DType, FloatDType, BlockDType } from "./core/dtype.js";
export { tensor, zeros, ones, full, zerosLike, onesLike, arange, randn, rand, randint, manualSeed, Generator } from "./core/ops/create.js";

// Ops (also available as Tensor methods)
export { add, sub, mul, div, pow, maximum, minimum, where, maskedFill, cast } from "./core/ops/elementwise.js";
export { sum, mean, max, min, argmax, logsumexp, softmax, logSoftmax, topk } from "./core/ops/reduce.js";
export { concat, split, reshape, permute, transpose, slice, expand, squeeze, unsqueeze, contiguous } from "./core/ops/movement.js";
export { indexSelect, indexAdd, gather, scatterAdd, embedding } from "./core/ops/index_ops.js";
export { matmul, packWeight, matmulPacked, PackedWeight } from "./core/ops/linalg.js";
export { crossEntropy } from "./core/ops/loss.js";

// Fused ops and their references
export { rmsNorm, rmsNormReference } from "./core/fused/rms_norm.js";
export { rope, ropeReference } from "./core/fused/rope.js";
export { swiglu, swigluReference } from "./core/fused/swiglu.js";
export { sdpa, sdpaReference } from "./core/fused/sdpa.js";

// Autograd and backends
export { noGrad, isGradEnabled } from "./core/autograd.js";
export { getBackend, setBackend, withBackend, nativeAvailable } from "./core/backend/index.js";
export { FathomError, ShapeError, DTypeError, GradError, FormatError } from "./core/errors.js";

// Training
export { AdamW } from "./train/optim/adamw.js";

// Models and files
export { Module } from "./nn/module.js";
export { Linear, Embedding, RMSNorm, MLP } from "./nn/layers.js";
export { KVCache } from "./nn/attention.js";
export { CausalLM, type ModelInfo } from "./models/decoder.js";
export { modelFromConfig, randomModel, SUPPORTED_MODEL_TYPES } from "./models/registry.js";
export { AutoModelForCausalLM } from "./io/auto.js";
export { loadFolder, saveFolder } from "./io/hf_folder.js";
export { SafetensorsFile, SafetensorsCheckpoint, saveSafetensors, saveSharded, dequantFp8 } from "./io/safetensors.js";
export type { TensorInfo, SaveShardedOptions } from "./io/safetensors.js";
export { GGUFFile, GGUFMetadata, writeGGUF, encodeGGUF } from "./io/gguf.js";
export { exportGGUF, loadGGUF } from "./io/gguf_model.js";
export { tokenizerToGGUF, ggufToTokenizer } from "./io/gguf_tokenizer.js";
export type { GGUFTensorInfo, GGUFEntry, GGUFArray, GGUFValue, GGUFType, GGUFScalarType, GGUFMetadataEntry, GGUFArrayInput, GGUFWriteOptions } from "./io/gguf.js";
export { QUANT_TYPES, quantizeTensor, dequantizeTensor } from "./quant/types.js";
export type { QuantType } from "./quant/types.js";
export { QLinear, QEmbedding, quantizeModel, quantizeWeight, dequantizeWeight, chooseType } from "./quant/qlinear.js";
export type { QuantizeReport, QuantizeOptions, QWeight } from "./quant/qlinear.js";
export type { QuantKind } from "./quant/qmatmul.js";
export type { KVCacheDType, KVCacheOptions } from "./nn/attention.js";

// Generation
export { generate, generateStream, GenerationSession, type GenerateOptions, type GenerateResult } from "./generate/generate.js";
export { GENERATION_DEFAULTS, type GenerationConfig } from "./generate/config.js";

// Tokenizers
export { trainBPE, saveTokenizer, stringifyTokenizer, preTokenize } from "./tokenizers/bpe_trainer.js";
export type { TrainBPEInput, TrainBPEOptions, TrainBPEResult, TrainBPEStats, TokenizerJSON, TokenizerConfigJSON } from "./tokenizers/bpe_trainer.js";
export { Tokenizer } from "./tokenizers/tokenizer.js";
export type { EncodeOptions, DecodeOptions, BatchEncodeOptions, BatchEncoding } from "./tokenizers/tokenizer.js";
export { StreamDecoder, cleanUpTokenization } from "./tokenizers/stream_decoder.js";
export type { StreamDecoderOptions } from "./tokenizers/stream_decoder.js";
export { FALLBACK_CHAT_TEMPLATE, renderChatTemplate, selectChatTemplate } from "./tokenizers/chat_template.js";
export type { ChatMessage, ToolCall, ChatTemplateOptions } from "./tokenizers/chat_template.js";
export { buildFimPrompt, extractFimMiddle, fimTokenIds, FIM_BEGIN, FIM_HOLE, FIM_END } from "./tokenizers/fim.js";
export type { FimPrompt } from "./tokenizers/fim.js";
