#include "sequenceState.h"

#include <algorithm>

namespace hearth {

// A sliding-window cache (Gemma) drops positions that fell out of the window: a prefix is only of use when the window
// before its end is still there, else the next token would attend to nothing (llama-server's test before it reuses a
// slot's prompt).
static bool WindowKept(llama_context* context, llama_memory_t memory, llama_seq_id sequence, int32_t keep) {
    const int32_t window = llama_model_n_swa(llama_get_model(context));
    if (window <= 0)
        return true;
    const llama_pos first = llama_memory_seq_pos_min(memory, sequence);
    return first <= 0 || first < keep - window;
}

int32_t KeepPrefix(llama_context* context, llama_seq_id sequence, int32_t keep) {
    llama_memory_t memory = llama_get_memory(context);
    if (keep > 0 && WindowKept(context, memory, sequence, keep) && llama_memory_seq_rm(memory, sequence, keep, -1))
        return keep;
    llama_memory_seq_rm(memory, sequence, -1, -1);
    return 0;
}

int32_t CopyPrefix(llama_context* context, llama_seq_id target, llama_seq_id source, int32_t keep) {
    llama_memory_t memory = llama_get_memory(context);
    llama_memory_seq_rm(memory, target, -1, -1);
    // A generation running on the source may have evaluated more than JavaScript asked for, never less.
    keep = std::min(keep, llama_memory_seq_pos_max(memory, source) + 1);
    if (keep <= 0 || target == source)
        return 0;
    // Whole sequences only: where each sequence has a buffer of its own (node-llama-cpp's contexts), llama.cpp copies
    // the buffer at the next decode and refuses a part of it. The positions past `keep` are then dropped from the copy.
    llama_memory_seq_cp(memory, source, target, -1, -1);
    return KeepPrefix(context, target, keep);
}

bool SaveSequence(llama_context* context, llama_seq_id sequence, std::vector<uint8_t>& out, double maxBytes) {
    out.clear();
    const size_t size = llama_state_seq_get_size(context, sequence);
    if (size == 0 || static_cast<double>(size) > maxBytes)
        return false;
    out.resize(size);
    if (llama_state_seq_get_data(context, out.data(), out.size(), sequence) != size) {
        std::vector<uint8_t>().swap(out);
        return false;
    }
    return true;
}

int32_t RestoreSequence(llama_context* context, llama_seq_id sequence, const std::vector<uint8_t>& state, int32_t keep) {
    llama_memory_seq_rm(llama_get_memory(context), sequence, -1, -1);
    if (state.empty() || keep <= 0)
        return 0;
    // llama.cpp empties the sequence itself when the state does not fit (no free cells, another model's layout).
    if (llama_state_seq_set_data(context, state.data(), state.size(), sequence) != state.size()) {
        llama_memory_seq_rm(llama_get_memory(context), sequence, -1, -1);
        return 0;
    }
    keep = std::min(keep, llama_memory_seq_pos_max(llama_get_memory(context), sequence) + 1);
    return KeepPrefix(context, sequence, keep);
}

namespace {

class SequenceState : public Napi::ObjectWrap<SequenceState> {
public:
    static Napi::Function Define(Napi::Env env) {
        Napi::Function constructor = DefineClass(env, "SequenceState", {
            InstanceMethod<&SequenceState::Size>("size"),
            InstanceMethod<&SequenceState::Free>("free")
        });
        constructor_ = Napi::Persistent(constructor);
        constructor_.SuppressDestruct();
        return constructor;
    }

    // Whether a value is a SequenceState (and not another wrapped object, which Unwrap would misread).
    static bool Is(Napi::Value value) {
        return value.IsObject() && !constructor_.IsEmpty() && value.As<Napi::Object>().InstanceOf(constructor_.Value());
    }

    explicit SequenceState(const Napi::CallbackInfo& info)
        : Napi::ObjectWrap<SequenceState>(info), bytes_(std::make_shared<std::vector<uint8_t>>()) {}

    StateBytes Bytes() const { return bytes_; }

private:
    static inline Napi::FunctionReference constructor_;
    StateBytes bytes_;

    // size(): its bytes; read only once the save that fills it has been reported.
    Napi::Value Size(const Napi::CallbackInfo& info) {
        return Napi::Number::New(info.Env(), static_cast<double>(bytes_->size()));
    }

    // free(): lets go of its bytes at once (a save or restore still under way keeps its own reference until it ends).
    Napi::Value Free(const Napi::CallbackInfo& info) {
        bytes_ = std::make_shared<std::vector<uint8_t>>();
        return info.Env().Undefined();
    }
};

}  // namespace

StateBytes StateOf(Napi::Env env, Napi::Value value) {
    if (!SequenceState::Is(value))
        throw Napi::TypeError::New(env, "Not a sequence state");
    return SequenceState::Unwrap(value.As<Napi::Object>())->Bytes();
}

void DefineSequenceState(Napi::Env env, Napi::Object exports) {
    exports.Set("SequenceState", SequenceState::Define(env));
}

}  // namespace hearth
