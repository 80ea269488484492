// A model's multimodal projector through llama.cpp's multimodal library (libmtmd), built from the llama.cpp source
// node-llama-cpp bundles and linked into this addon.
//
// JavaScript loads a projector for a loaded model (new Projector(model, path, options).load()), turns each image of a
// prompt into chunks (tokenize(image): the text tokens libmtmd puts around it and one chunk of image tokens), and
// hands the image chunks to a decode loop, which evaluates each on the request's own sequence (EvaluateImage):
// libmtmd encodes the image with the projector, and the embeddings are decoded into the sequence like tokens.

#include "projector.h"

#include <cstdio>
#include <cstring>
#include <vector>

#if HEARTH_VISION
#include "ggml.h"
#include "mtmd.h"
#include "mtmd-helper.h"
#endif

namespace hearth {

#if HEARTH_VISION
namespace {

// libmtmd's and clip's own log lines: their warnings and errors go to stderr, their progress notes nowhere.
void QuietLog(ggml_log_level level, const char* text, void*) {
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR)
        std::fputs(text, stderr);
}

struct ChunkHandle {
    SharedChunk chunk;
};

Napi::Value WrapChunk(Napi::Env env, SharedChunk chunk) {
    return Napi::External<ChunkHandle>::New(env, new ChunkHandle{std::move(chunk)}, [](Napi::Env, ChunkHandle* handle) {
        delete handle;
    });
}

// A promise settled by a worker thread's Execute and then OnOK on the JavaScript thread.
class PromiseWorker : public Napi::AsyncWorker {
public:
    explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

    Napi::Promise Promise() { return deferred_.Promise(); }

protected:
    void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }
    Napi::Promise::Deferred deferred_;
};

struct TokenizedPart {
    bool image;
    std::vector<llama_token> tokens;  // a text part's tokens
    SharedChunk chunk;                // an image part's chunk
    bool nonCausal = false;           // an image part decoded with non-causal attention
};

class Projector;

class LoadWorker : public PromiseWorker {
public:
    LoadWorker(Napi::Env env, Projector* projector, std::string path, mtmd_context_params params, const llama_model* model)
        : PromiseWorker(env), projector_(projector), path_(std::move(path)), params_(params), model_(model) {}

    void Execute() override;
    void OnOK() override;
    void OnError(const Napi::Error& error) override;

private:
    Projector* projector_;
    std::string path_;
    mtmd_context_params params_;
    const llama_model* model_;
    mtmd_context* loaded_ = nullptr;
};

class TokenizeWorker : public PromiseWorker {
public:
    TokenizeWorker(Napi::Env env, std::shared_ptr<ProjectorState> state, std::vector<unsigned char> bytes, uint32_t width, uint32_t height, std::string id)
        : PromiseWorker(env), state_(std::move(state)), bytes_(std::move(bytes)), width_(width), height_(height), id_(std::move(id)) {}

    void Execute() override {
        std::shared_lock<std::shared_mutex> alive(state_->lifetime);
        mtmd_context* context = state_->context;
        if (context == nullptr)
            return SetError("The projector was unloaded");
        mtmd_bitmap* bitmap = nullptr;
        if (width_ > 0) {
            // Pixels decoded by JavaScript (a format libmtmd's image reader lacks): RGB, row by row.
            if (bytes_.size() != static_cast<size_t>(width_) * height_ * 3)
                return SetError("The image's pixels do not match its size");
            bitmap = mtmd_bitmap_init(width_, height_, bytes_.data());
            if (bitmap != nullptr && !id_.empty())
                mtmd_bitmap_set_id(bitmap, id_.c_str());
        } else {
            mtmd_helper_bitmap_wrapper wrapper = mtmd_helper_bitmap_init_from_buf(context, bytes_.data(), bytes_.size(), false, mtmd_helper_init_opt_default());
            if (wrapper.video_ctx != nullptr) {
                mtmd_helper_video_free(wrapper.video_ctx);
                if (wrapper.bitmap != nullptr)
                    mtmd_bitmap_free(wrapper.bitmap);
                return SetError("The image could not be decoded");
            }
            bitmap = wrapper.bitmap;
        }
        if (bitmap == nullptr)
            return SetError("The image could not be decoded");
        if (mtmd_bitmap_is_audio(bitmap)) {
            mtmd_bitmap_free(bitmap);
            return SetError("The image could not be decoded");
        }
        mtmd_input_chunks* chunks = mtmd_input_chunks_init();
        const char* marker = mtmd_default_marker();
        const mtmd_input_text text{marker, std::strlen(marker), false, true};
        const mtmd_bitmap* bitmaps[] = {bitmap};
        const int32_t status = mtmd_tokenize(context, chunks, &text, bitmaps, 1);
        mtmd_bitmap_free(bitmap);
        if (status != 0) {
            mtmd_input_chunks_free(chunks);
            return SetError(status == 2 ? "The image could not be preprocessed for the projector" : "The image could not be tokenized");
        }
        for (size_t index = 0; index < mtmd_input_chunks_size(chunks); index++) {
            const mtmd_input_chunk* chunk = mtmd_input_chunks_get(chunks, index);
            const mtmd_input_chunk_type type = mtmd_input_chunk_get_type(chunk);
            if (type == MTMD_INPUT_CHUNK_TYPE_TEXT) {
                size_t count = 0;
                const llama_token* tokens = mtmd_input_chunk_get_tokens_text(chunk, &count);
                if (count > 0)
                    parts_.push_back({false, std::vector<llama_token>(tokens, tokens + count), nullptr, false});
            } else if (type == MTMD_INPUT_CHUNK_TYPE_IMAGE) {
                parts_.push_back({true, {}, SharedChunk(mtmd_input_chunk_copy(chunk), mtmd_input_chunk_free), mtmd_decode_use_non_causal(context, chunk)});
            } else {
                mtmd_input_chunks_free(chunks);
                return SetError("The projector made something other than image tokens of it");
            }
        }
        mtmd_input_chunks_free(chunks);
    }

    void OnOK() override {
        Napi::Env env = Env();
        Napi::Array result = Napi::Array::New(env, parts_.size());
        for (size_t index = 0; index < parts_.size(); index++) {
            const TokenizedPart& part = parts_[index];
            Napi::Object item = Napi::Object::New(env);
            if (!part.image) {
                Napi::Uint32Array tokens = Napi::Uint32Array::New(env, part.tokens.size());
                for (size_t position = 0; position < part.tokens.size(); position++)
                    tokens[position] = static_cast<uint32_t>(part.tokens[position]);
                item.Set("type", "text");
                item.Set("tokens", tokens);
            } else {
                const mtmd_input_chunk* chunk = part.chunk.get();
                const char* id = mtmd_input_chunk_get_id(chunk);
                item.Set("type", "image");
                item.Set("tokens", Napi::Number::New(env, static_cast<double>(mtmd_input_chunk_get_n_tokens(chunk))));
                item.Set("positions", Napi::Number::New(env, static_cast<double>(mtmd_input_chunk_get_n_pos(chunk))));
                item.Set("nonCausal", Napi::Boolean::New(env, part.nonCausal));
                item.Set("id", Napi::String::New(env, id != nullptr ? id : ""));
                item.Set("chunk", WrapChunk(env, part.chunk));
            }
            result.Set(static_cast<uint32_t>(index), item);
        }
        deferred_.Resolve(result);
    }

private:
    std::shared_ptr<ProjectorState> state_;
    std::vector<unsigned char> bytes_;
    uint32_t width_;
    uint32_t height_;
    std::string id_;
    std::vector<TokenizedPart> parts_;
};

class Projector : public Napi::ObjectWrap<Projector> {
public:
    static Napi::Function Define(Napi::Env env) {
        Napi::Function constructor = DefineClass(env, "Projector", {
            InstanceMethod<&Projector::Load>("load"),
            InstanceMethod<&Projector::Info>("info"),
            InstanceMethod<&Projector::Tokenize>("tokenize"),
            InstanceMethod<&Projector::Close>("close")
        });
        constructor_ = Napi::Persistent(constructor);
        constructor_.SuppressDestruct();
        return constructor;
    }

    // Whether a value is a Projector (and not another wrapped object, which Unwrap would misread).
    static bool Is(Napi::Value value) {
        return value.IsObject() && !constructor_.IsEmpty() && value.As<Napi::Object>().InstanceOf(constructor_.Value());
    }

    // new Projector(model, path, {useGpu, threads, imageMinTokens, imageMaxTokens}): node-llama-cpp's native model object.
    explicit Projector(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Projector>(info) {
        Napi::Env env = info.Env();
        if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsString() || !info[2].IsObject())
            throw Napi::TypeError::New(env, "Projector(model, path, options)");
        model_ = CheckedModel(env, info[0].As<Napi::Object>());
        modelRef_ = Napi::Persistent(info[0].As<Napi::Object>());
        path_ = info[1].As<Napi::String>().Utf8Value();
        Napi::Object options = info[2].As<Napi::Object>();
        auto whole = [&](const char* name, int fallback) {
            Napi::Value value = options.Get(name);
            return value.IsNumber() ? value.As<Napi::Number>().Int32Value() : fallback;
        };
        params_ = mtmd_context_params_default();
        params_.use_gpu = options.Get("useGpu").ToBoolean().Value();
        params_.n_threads = whole("threads", 4);
        params_.print_timings = false;
        params_.warmup = false;
        params_.image_min_tokens = whole("imageMinTokens", -1);
        params_.image_max_tokens = whole("imageMaxTokens", -1);
        params_.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
        state_ = std::make_shared<ProjectorState>();
    }

    ~Projector() override { Free(); }

    void Loaded(mtmd_context* context) { state_->context = context; }

    std::shared_ptr<ProjectorState> State() const { return state_; }

private:
    friend class LoadWorker;
    static inline Napi::FunctionReference constructor_;
    const llama_model* model_ = nullptr;
    Napi::ObjectReference modelRef_;
    std::string path_;
    mtmd_context_params params_{};
    std::shared_ptr<ProjectorState> state_;
    bool loading_ = false;

    // load(): reads the projector file (and puts it on the GPU when asked); resolves when it can be used.
    Napi::Value Load(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        if (loading_ || state_->context != nullptr)
            throw Napi::Error::New(env, "The projector is already loaded");
        loading_ = true;
        auto* worker = new LoadWorker(env, this, path_, params_, model_);
        Napi::Promise promise = worker->Promise();
        Ref();  // kept alive until the worker is done
        worker->Queue();
        return promise;
    }

    // info(): what the projector takes and how its images are decoded.
    Napi::Value Info(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        mtmd_context* context = state_->context;
        if (context == nullptr)
            throw Napi::Error::New(env, "The projector is not loaded");
        Napi::Object result = Napi::Object::New(env);
        result.Set("vision", Napi::Boolean::New(env, mtmd_support_vision(context)));
        result.Set("audio", Napi::Boolean::New(env, mtmd_support_audio(context)));
        result.Set("mrope", Napi::Boolean::New(env, mtmd_decode_use_mrope(context)));
        return result;
    }

    // tokenize(image): image is {data: Uint8Array} (an encoded file) or {width, height, pixels: Uint8Array (RGB), id}.
    Napi::Value Tokenize(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        if (state_->context == nullptr)
            throw Napi::Error::New(env, "The projector is not loaded");
        if (info.Length() < 1 || !info[0].IsObject())
            throw Napi::TypeError::New(env, "tokenize(image)");
        Napi::Object image = info[0].As<Napi::Object>();
        Napi::Value data = image.Get("data");
        Napi::Value pixels = image.Get("pixels");
        std::vector<unsigned char> bytes;
        uint32_t width = 0;
        uint32_t height = 0;
        std::string id;
        auto copy = [&](Napi::Value value) {
            Napi::Uint8Array array = value.As<Napi::Uint8Array>();
            bytes.assign(array.Data(), array.Data() + array.ByteLength());
        };
        if (data.IsTypedArray()) {
            copy(data);
        } else if (pixels.IsTypedArray() && image.Get("width").IsNumber() && image.Get("height").IsNumber()) {
            copy(pixels);
            width = image.Get("width").As<Napi::Number>().Uint32Value();
            height = image.Get("height").As<Napi::Number>().Uint32Value();
            if (width == 0 || height == 0)
                throw Napi::RangeError::New(env, "The image has no pixels");
            if (image.Get("id").IsString())
                id = image.Get("id").As<Napi::String>().Utf8Value();
        } else {
            throw Napi::TypeError::New(env, "tokenize(image): image must have data, or width, height and pixels");
        }
        if (bytes.empty())
            throw Napi::RangeError::New(env, "The image is empty");
        auto* worker = new TokenizeWorker(env, state_, std::move(bytes), width, height, std::move(id));
        Napi::Promise promise = worker->Promise();
        worker->Queue();
        return promise;
    }

    // close(): frees the projector; call it once no generation evaluates its images.
    Napi::Value Close(const Napi::CallbackInfo& info) {
        Free();
        modelRef_.Reset();
        return info.Env().Undefined();
    }

    void Free() {
        if (state_ == nullptr)
            return;
        std::lock_guard<std::mutex> lock(state_->encoding);
        std::unique_lock<std::shared_mutex> alone(state_->lifetime);
        if (state_->context != nullptr) {
            mtmd_free(state_->context);
            state_->context = nullptr;
        }
    }
};

void LoadWorker::Execute() {
    mtmd_helper_log_set(QuietLog, nullptr);
    loaded_ = mtmd_init_from_file(path_.c_str(), model_, params_);
    if (loaded_ == nullptr)
        SetError("The projector " + path_ + " could not be loaded (is it an mmproj GGUF made for this model?)");
    else if (!mtmd_support_vision(loaded_)) {
        mtmd_free(loaded_);
        loaded_ = nullptr;
        SetError("The projector " + path_ + " takes no images (it is not a vision projector)");
    }
}

void LoadWorker::OnOK() {
    projector_->Loaded(loaded_);
    projector_->loading_ = false;
    projector_->Unref();
    deferred_.Resolve(Env().Undefined());
}

void LoadWorker::OnError(const Napi::Error& error) {
    projector_->loading_ = false;
    projector_->Unref();
    deferred_.Reject(error.Value());
}

}  // namespace

std::shared_ptr<ProjectorState> ProjectorOf(Napi::Env env, Napi::Value value) {
    if (!Projector::Is(value))
        throw Napi::TypeError::New(env, "Not a projector");
    Projector* projector = Projector::Unwrap(value.As<Napi::Object>());
    std::shared_ptr<ProjectorState> state = projector->State();
    if (state == nullptr || state->context == nullptr)
        throw Napi::Error::New(env, "The projector is not loaded");
    return state;
}

SharedChunk ChunkOf(Napi::Env env, Napi::Value value) {
    if (!value.IsExternal())
        throw Napi::TypeError::New(env, "Not an image chunk");
    ChunkHandle* handle = value.As<Napi::External<ChunkHandle>>().Data();
    if (handle == nullptr || handle->chunk == nullptr)
        throw Napi::TypeError::New(env, "Not an image chunk");
    return handle->chunk;
}

llama_pos EvaluateImage(ProjectorState& projector, llama_context* context, const mtmd_input_chunk* chunk,
        llama_seq_id sequence, llama_pos position, int32_t batchSize, std::string& error) {
    std::lock_guard<std::mutex> lock(projector.encoding);
    if (projector.context == nullptr) {
        error = "The projector was unloaded";
        return -1;
    }
    const size_t tokens = mtmd_input_chunk_get_n_tokens(chunk);
    // A non-causal decode split over several micro-batches would see only part of the image at a time (and
    // llama.cpp aborts on it): the caller sizes the batch so this never happens.
    if (mtmd_decode_use_non_causal(projector.context, chunk) && tokens > static_cast<size_t>(batchSize)) {
        error = "The image is " + std::to_string(tokens) + " tokens, more than the context's batch of " + std::to_string(batchSize);
        return -1;
    }
    if (mtmd_encode_chunk(projector.context, chunk) != 0) {
        error = "The projector could not encode the image";
        return -1;
    }
    float* embeddings = mtmd_get_output_embd(projector.context);
    llama_pos next = position;
    const int32_t status = mtmd_helper_decode_image_chunk(projector.context, context, chunk, embeddings, position, sequence,
        batchSize, &next, nullptr, nullptr);
    if (status != 0) {
        error = status == 1 ? "The context is full: no room in the KV cache for the image"
            : "Decoding the image failed (status " + std::to_string(status) + ")";
        return -1;
    }
    return next;
}

void DefineProjector(Napi::Env env, Napi::Object exports) {
    exports.Set("Projector", Projector::Define(env));
}

#else

std::shared_ptr<ProjectorState> ProjectorOf(Napi::Env env, Napi::Value) {
    throw Napi::Error::New(env, "This addon was built without llama.cpp's multimodal library");
}

SharedChunk ChunkOf(Napi::Env env, Napi::Value) {
    throw Napi::Error::New(env, "This addon was built without llama.cpp's multimodal library");
}

llama_pos EvaluateImage(ProjectorState&, llama_context*, const mtmd_input_chunk*, llama_seq_id, llama_pos, int32_t, std::string& error) {
    error = "This addon was built without llama.cpp's multimodal library";
    return -1;
}

void DefineProjector(Napi::Env, Napi::Object) {}

#endif

}  // namespace hearth
