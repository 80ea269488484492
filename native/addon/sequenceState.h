// What a slot's KV cache can do besides decoding: take a prefix of another slot's cache, and be saved to memory
// outside the context and put back later (Hearth's prompt cache). Both decode loops call these between batches:
// the native loop on its own thread (decodeLoop.cpp), the JavaScript one through the functions decodeLoop.cpp exports.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "llama.h"
#include "napi.h"

namespace hearth {

using StateBytes = std::shared_ptr<std::vector<uint8_t>>;

// Keeps the first `keep` positions of a sequence. Returns the positions kept: `keep`, or 0 when the cache cannot drop
// part of a sequence (recurrent models) and dropped all of it.
int32_t KeepPrefix(llama_context* context, llama_seq_id sequence, int32_t keep);

// Replaces what `target` holds with the first `keep` positions of `source` (at most what `source` holds). Returns the
// positions `target` now holds.
int32_t CopyPrefix(llama_context* context, llama_seq_id target, llama_seq_id source, int32_t keep);

// The state of a sequence (its KV cells), into `out`; false, with `out` empty, when it is larger than `maxBytes` or
// could not be read.
bool SaveSequence(llama_context* context, llama_seq_id sequence, std::vector<uint8_t>& out, double maxBytes);

// Replaces what `sequence` holds with a saved state, then keeps its first `keep` positions. Returns the positions
// kept: 0 when the state did not fit the context (the sequence is then empty).
int32_t RestoreSequence(llama_context* context, llama_seq_id sequence, const std::vector<uint8_t>& state, int32_t keep);

// The bytes of a SequenceState object; throws a TypeError for anything else.
StateBytes StateOf(Napi::Env env, Napi::Value value);

// exports.SequenceState: a saved sequence state, held in native memory (never copied into JavaScript's heap).
void DefineSequenceState(Napi::Env env, Napi::Object exports);

}  // namespace hearth
