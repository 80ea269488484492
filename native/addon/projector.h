// A model's multimodal projector (mmproj) in llama.cpp's multimodal library (libmtmd): images become chunks
// of image tokens here, and the decode loops evaluate those chunks on a sequence (see projector.cpp).
#pragma once

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "llama.h"
#include "napi.h"

// HEARTH_VISION is 0 where libmtmd could not be built (see buildAddon.ts): the addon then has no Projector, and
// these functions refuse.
#ifndef HEARTH_VISION
#define HEARTH_VISION 1
#endif

struct mtmd_context;
struct mtmd_input_chunk;

namespace hearth {

// One image's chunk of image tokens, shared by the JavaScript object that holds it and a generation that evaluates it.
using SharedChunk = std::shared_ptr<mtmd_input_chunk>;

// The projector behind a JavaScript Projector object; throws a JavaScript error for anything else, or one not loaded.
struct ProjectorState {
    mtmd_context* context = nullptr;
    // libmtmd encodes one image at a time per context, and its output buffer holds the last one encoded.
    std::mutex encoding;
    // Held shared while images are tokenized (which libmtmd allows at once), and whole to free the context.
    std::shared_mutex lifetime;
};

std::shared_ptr<ProjectorState> ProjectorOf(Napi::Env env, Napi::Value value);

// The chunk inside a JavaScript image-chunk handle (from Projector.tokenize).
SharedChunk ChunkOf(Napi::Env env, Napi::Value value);

// Encodes an image chunk and decodes its embeddings into `sequence` at `position` (non-causally where the model
// wants it), leaving the context causal. Returns the position after it, or -1 with `error` set. Call it where
// nothing else decodes on the context: the causal switch is the whole context's.
llama_pos EvaluateImage(ProjectorState& projector, llama_context* context, const mtmd_input_chunk* chunk,
    llama_seq_id sequence, llama_pos position, int32_t batchSize, std::string& error);

void DefineProjector(Napi::Env env, Napi::Object exports);

// Defined in decodeLoop.cpp: node-llama-cpp's llama_model inside its model object, checked as the loop checks it.
llama_model* CheckedModel(Napi::Env env, Napi::Object modelObject);

}  // namespace hearth
