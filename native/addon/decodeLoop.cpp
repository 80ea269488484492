// Hearth's decode loop in native code: continuous batching on one node-llama-cpp context, with
// decoding and sampling on one thread of its own, so that a token never waits for JavaScript.
//
// Each generation starts with a prompt (or the rest of one) on a sequence of the context. The loop
// puts every sequence that has work into one batch (one token for each sequence that is generating,
// then prompt chunks up to the batch size), decodes it, samples the next token of every sequence whose
// input is complete, and feeds each token straight into the next batch until the sequence reaches an
// end-of-generation token, its token budget, or JavaScript asks it to stop (a stop string, a closed
// client). Every sampled token is posted to JavaScript, which turns tokens into text and streams them.
//
// The context itself belongs to node-llama-cpp; this addon borrows its llama_context while the loop
// runs. The build links one copy of this addon against each libllama that node-llama-cpp ships or built
// here (CPU, Vulkan, CUDA, source builds), and Hearth loads the copy made for the binary node-llama-cpp
// loaded: the dynamic linker then reuses that already loaded libllama by its soname, so both work on one
// instance of the engine.
//
// The llama_context is read out of node-llama-cpp's AddonContext, whose layout comes from the headers of
// the node-llama-cpp version the addon was compiled against. Before the loop trusts it, every field is read
// with a read that fails instead of faulting (ReadMemory), and the result is checked against facts found
// independently: the binary that made the context, the llama_model of node-llama-cpp's model object, and
// the context size, sequences and batch size that JavaScript knows. Any mismatch is an error JavaScript
// reports (it decodes with its own loop instead), never a crash.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/uio.h>
#endif

#include "ggml-backend.h"
#include "llama.h"
#include "napi.h"
#include "AddonContext.h"
#include "AddonModel.h"
#include "draftModel.h"
#include "drafting.h"
#include "projector.h"
#include "sequenceState.h"

#ifndef HEARTH_NODE_LLAMA_CPP_VERSION
#error "HEARTH_NODE_LLAMA_CPP_VERSION (the node-llama-cpp version whose headers this is compiled with) must be defined"
#endif

namespace {

// Copies `size` bytes at `address` of this process into `out`; false instead of a fault when any of it is
// not readable. process_vm_readv on the own process reports EFAULT for unmapped memory; where it is not
// allowed (a seccomp profile), a write of that memory into a pipe does the same check in the kernel.
bool ReadMemory(const void* address, void* out, size_t size) {
    if (address == nullptr)
        return false;
#if defined(__linux__)
    iovec local{out, size};
    iovec remote{const_cast<void*>(address), size};
    const ssize_t read = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (read == static_cast<ssize_t>(size))
        return true;
    if (read >= 0 || (errno != ENOSYS && errno != EPERM))
        return false;
#endif
    int pipeFds[2];
    if (pipe(pipeFds) != 0)
        return false;
    bool ok = true;
    size_t done = 0;
    while (ok && done < size) {
        const size_t chunk = std::min<size_t>(size - done, 4096);
        ok = write(pipeFds[1], static_cast<const char*>(address) + done, chunk) == static_cast<ssize_t>(chunk)
            && ::read(pipeFds[0], static_cast<char*>(out) + done, chunk) == static_cast<ssize_t>(chunk);
        done += chunk;
    }
    close(pipeFds[0]);
    close(pipeFds[1]);
    return ok;
}

template <typename Value>
bool ReadValue(const void* address, Value& out) {
    return ReadMemory(address, &out, sizeof(Value));
}

// The file (resolved) that holds an address of this process: a loaded library, or "" when none does.
std::string FileOf(const void* address) {
    Dl_info info{};
    if (dladdr(address, &info) == 0 || info.dli_fname == nullptr)
        return "";
    char resolved[PATH_MAX];
    return realpath(info.dli_fname, resolved) != nullptr ? std::string(resolved) : std::string(info.dli_fname);
}

std::string FolderOf(const std::string& file) {
    const size_t slash = file.find_last_of('/');
    return slash == std::string::npos ? std::string() : file.substr(0, slash);
}

// The libllama this copy of the addon calls into (the one the dynamic linker bound it to).
std::string LinkedLibllama() {
    return FileOf(reinterpret_cast<const void*>(&llama_get_model));
}

// What JavaScript knows of the context, which the addon's own view must agree with.
struct Expected {
    uint32_t contextSize;
    uint32_t sequences;
    uint32_t batchSize;
};

// The llama_context inside node-llama-cpp's context object, checked (see the top of this file); throws a
// message saying which check failed.
llama_context* CheckedContext(Napi::Env env, Napi::Object contextObject, Napi::Object modelObject, const Expected& expected) {
    auto refuse = [&](const std::string& why) {
        return Napi::Error::New(env, "node-llama-cpp's context is not what this addon was built for (node-llama-cpp "
            HEARTH_NODE_LLAMA_CPP_VERSION "): " + why);
    };
    void* contextWrap = nullptr;
    void* modelWrap = nullptr;
    if (napi_unwrap(env, contextObject, &contextWrap) != napi_ok || contextWrap == nullptr)
        throw refuse("the context object wraps no native object");
    if (napi_unwrap(env, modelObject, &modelWrap) != napi_ok || modelWrap == nullptr)
        throw refuse("the model object wraps no native object");
    // Addresses of fields only: nothing is dereferenced until ReadValue has checked it is readable.
    auto* addonContext = static_cast<AddonContext*>(contextWrap);
    auto* addonModel = static_cast<AddonModel*>(modelWrap);

    // The binary that made the context: its C++ object's first word points into that binary's code or data.
    const void* vtable = nullptr;
    if (!ReadValue(contextWrap, vtable))
        throw refuse("its native object cannot be read");
    const std::string maker = FileOf(vtable);
    const std::string linked = LinkedLibllama();
    if (maker.empty())
        throw refuse("no loaded binary holds its native object's type");
    if (linked.empty() || FolderOf(maker) != FolderOf(linked))
        throw refuse("it was made by " + maker + ", and this addon is linked to " + (linked.empty() ? "an unknown libllama" : linked));

    AddonModel* contextModel = nullptr;
    llama_context* ctx = nullptr;
    bool contextLoaded = false;
    bool disposed = true;
    if (!ReadValue(&addonContext->model, contextModel) || !ReadValue(&addonContext->ctx, ctx)
            || !ReadValue(&addonContext->contextLoaded, contextLoaded) || !ReadValue(&addonContext->disposed, disposed))
        throw refuse("its fields cannot be read");
    if (contextModel != addonModel)
        throw refuse("its model is not the model object it was created from");
    if (disposed || !contextLoaded || ctx == nullptr)
        throw Napi::Error::New(env, "The context is not loaded");
    llama_model* model = nullptr;
    if (!ReadValue(&addonModel->model, model) || model == nullptr)
        throw refuse("the model object's llama_model cannot be read");

    // A llama_context keeps a reference to its model among its first members: look for it before calling
    // anything on the pointer, then ask libllama itself.
    constexpr size_t kWords = 64;
    const void* words[kWords];
    if (!ReadMemory(ctx, words, sizeof(words)))
        throw refuse("its llama_context pointer does not point to readable memory");
    if (std::find(std::begin(words), std::end(words), static_cast<const void*>(model)) == std::end(words)
            || llama_get_model(ctx) != model)
        throw refuse("its llama_context does not belong to the model's llama_model");
    const uint32_t contextSize = llama_n_ctx(ctx);
    const uint32_t sequences = llama_n_seq_max(ctx);
    const uint32_t batchSize = llama_n_batch(ctx);
    if (contextSize != expected.contextSize || sequences != expected.sequences || batchSize != expected.batchSize)
        throw refuse("its llama_context has n_ctx " + std::to_string(contextSize) + ", n_seq_max " + std::to_string(sequences)
            + " and n_batch " + std::to_string(batchSize) + ", not " + std::to_string(expected.contextSize) + ", "
            + std::to_string(expected.sequences) + " and " + std::to_string(expected.batchSize));
    return ctx;
}

// CheckedContext for a call whose first three arguments are node-llama-cpp's context and model objects and what
// JavaScript knows of the context ({contextSize, sequences, batchSize}); the caller has checked that they are objects.
llama_context* CheckedContextArgs(const Napi::CallbackInfo& info) {
    Napi::Object expected = info[2].As<Napi::Object>();
    auto whole = [&](const char* name) {
        Napi::Value value = expected.Get(name);
        return value.IsNumber() ? value.As<Napi::Number>().Uint32Value() : 0u;
    };
    return CheckedContext(info.Env(), info[0].As<Napi::Object>(), info[1].As<Napi::Object>(),
        Expected{whole("contextSize"), whole("sequences"), whole("batchSize")});
}

// The llama_model inside node-llama-cpp's model object: the object must have been made by the binary this addon is
// linked to, and its llama_model pointer must be readable.
llama_model* ModelOf(Napi::Env env, Napi::Object modelObject) {
    void* modelWrap = nullptr;
    if (napi_unwrap(env, modelObject, &modelWrap) != napi_ok || modelWrap == nullptr)
        throw Napi::Error::New(env, "The model object wraps no native object");
    const void* vtable = nullptr;
    if (!ReadValue(modelWrap, vtable))
        throw Napi::Error::New(env, "The model object's native object cannot be read");
    const std::string maker = FileOf(vtable);
    const std::string linked = LinkedLibllama();
    if (maker.empty() || linked.empty() || FolderOf(maker) != FolderOf(linked))
        throw Napi::Error::New(env, "The model was made by another binary than the libllama this addon is linked to");
    auto* addonModel = static_cast<AddonModel*>(modelWrap);
    llama_model* model = nullptr;
    if (!ReadValue(&addonModel->model, model) || model == nullptr)
        throw Napi::Error::New(env, "The model object's llama_model cannot be read");
    return model;
}

// evaluateImage(context, model, expected, projector, chunk, sequence, position): for the JavaScript decode loop, which
// calls it between its batches. Resolves with the position after the image.
class EvaluateImageWorker : public Napi::AsyncWorker {
public:
    EvaluateImageWorker(Napi::Env env, llama_context* context, std::shared_ptr<hearth::ProjectorState> projector, hearth::SharedChunk chunk,
            llama_seq_id sequence, llama_pos position)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), context_(context), projector_(std::move(projector)),
          chunk_(std::move(chunk)), sequence_(sequence), position_(position) {}

    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override {
        std::string error;
        next_ = hearth::EvaluateImage(*projector_, context_, chunk_.get(), sequence_, position_, static_cast<int32_t>(llama_n_ubatch(context_)), error);
        if (next_ < 0)
            SetError(error);
    }

    void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), next_)); }
    void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    llama_context* context_;
    std::shared_ptr<hearth::ProjectorState> projector_;
    hearth::SharedChunk chunk_;
    llama_seq_id sequence_;
    llama_pos position_;
    llama_pos next_ = -1;
};

enum class EventKind : int32_t { Token = 0, End = 1, Edited = 2, Failed = 3 };
enum class EndReason : int32_t { Stopped = 0, EndOfGeneration = 1, Budget = 2, NothingSampled = 3 };

struct Event {
    EventKind kind;
    int32_t sequence;
    int32_t value;         // Token: the token; End: the reason; Edited: the tokens kept
    int32_t count = 0;     // End: how many tokens (input, then sampled) went into the sequence; Edited: the request id
    float logprob = 0;     // Token, with log probabilities asked for
    std::vector<std::pair<llama_token, float>> top;
    std::string message;   // Failed
    bool drafting = false;       // End of a generation that drafted: `drafts` holds its counts
    hearth::DraftCounts drafts;
};

using Events = std::vector<Event>;

struct Sampling {
    llama_sampler* chain = nullptr;
    llama_sampler* grammar = nullptr;
    int32_t topLogprobs = -1;  // < 0: none
    bool plainGreedy = false;  // greedy with nothing else in the chain: the likeliest token, read off the logits
    std::vector<llama_token> banned;  // never sampled: their logits are -inf before the chain and the grammar see them

    Sampling() = default;
    Sampling(const Sampling&) = delete;
    Sampling& operator=(const Sampling&) = delete;
    ~Sampling() {
        if (chain != nullptr)
            llama_sampler_free(chain);
        if (grammar != nullptr)
            llama_sampler_free(grammar);
    }
};

// An image in a generation's input: it stands for `positions` entries of the input, from `offset`.
struct PendingImage {
    size_t offset;
    llama_pos positions;
    hearth::SharedChunk chunk;
};

struct Generation {
    double id;                       // JavaScript's id for it, which stop() names
    int32_t sequence;
    llama_pos position;              // where the next input token goes
    std::vector<llama_token> input;  // still to decode; the last one's logits are sampled
    size_t inputDone = 0;
    std::unique_ptr<Sampling> sampling;
    int32_t budget;                  // tokens it may still sample
    bool ignoreEndOfGeneration;
    llama_pos startPosition;
    int32_t sampled = 0;             // tokens sampled so far
    int32_t read = 0;                // tokens JavaScript has taken (ack)
    bool stopRequested = false;
    std::deque<PendingImage> images; // in input order; each is evaluated alone when the input reaches it
    std::unique_ptr<hearth::Drafter> drafter;  // null: it never drafts
    int32_t drafted = 0;             // the draft at the end of the input, in the batch being built or decoded
    hearth::DraftSource draftSource = hearth::DraftSource::None;
};

// The End event of a generation, with its drafts' counts when it drafted.
static Event Ended(const Generation& generation, EndReason reason) {
    Event event{EventKind::End, generation.sequence, static_cast<int32_t>(reason), generation.position - generation.startPosition, NAN, {}, {}};
    if (generation.drafter != nullptr) {
        event.drafting = true;
        event.drafts = generation.drafter->Counts();
    }
    return event;
}

// How far a generation may sample ahead of what JavaScript has taken: a slow reader (a slow client) holds its own
// generation back instead of letting it run to its budget, and a client that leaves stops it within this many tokens.
constexpr int32_t kReadAhead = 64;

// A generation waiting for its reader: it has sampled kReadAhead tokens more than were taken, and has only its
// last sampled token left to decode (its prompt is never held back).
static bool HeldBack(const Generation& generation) {
    return generation.sampled - generation.read >= kReadAhead && generation.input.size() - generation.inputDone == 1 && generation.sampled > 0;
}

// A change to a sequence's cache, made between batches (see sequenceState.h).
enum class EditKind { Truncate, Copy, Save, Restore };

struct Edit {
    EditKind kind;
    int32_t requestId;
    int32_t sequence;
    int32_t keep = 0;            // Truncate, Copy, Restore: positions [keep, end) are dropped
    int32_t source = -1;         // Copy: the sequence copied from
    hearth::StateBytes state;    // Save: filled; Restore: read
    double maxBytes = 0;         // Save: a larger state is not saved
};

class DecodeLoop : public Napi::ObjectWrap<DecodeLoop> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "DecodeLoop", {
            InstanceMethod<&DecodeLoop::Start>("start"),
            InstanceMethod<&DecodeLoop::Stop>("stop"),
            InstanceMethod<&DecodeLoop::Ack>("ack"),
            InstanceMethod<&DecodeLoop::Truncate>("truncate"),
            InstanceMethod<&DecodeLoop::Copy>("copy"),
            InstanceMethod<&DecodeLoop::Save>("save"),
            InstanceMethod<&DecodeLoop::Restore>("restore"),
            InstanceMethod<&DecodeLoop::Close>("close"),
            InstanceMethod<&DecodeLoop::KeepAlive>("keepAlive"),
            InstanceMethod<&DecodeLoop::SetProjector>("setProjector"),
            InstanceMethod<&DecodeLoop::SetDraftModel>("setDraftModel"),
            InstanceMethod<&DecodeLoop::Info>("info")
        });
    }

    // new DecodeLoop(addonContext, addonModel, {contextSize, sequences, batchSize}, onEvents): node-llama-cpp's
    // native context and model objects, and what JavaScript knows of the context (see CheckedContext).
    DecodeLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DecodeLoop>(info) {
        Napi::Env env = info.Env();
        if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsObject() || !info[3].IsFunction())
            throw Napi::TypeError::New(env, "DecodeLoop(context, model, expected, onEvents)");
        ctx_ = CheckedContextArgs(info);
        contextRef_ = Napi::Persistent(info[0].As<Napi::Object>());
        modelRef_ = Napi::Persistent(info[1].As<Napi::Object>());
        vocab_ = llama_model_get_vocab(llama_get_model(ctx_));
        vocabSize_ = llama_vocab_n_tokens(vocab_);
        batchSize_ = static_cast<int32_t>(llama_n_batch(ctx_));
        batch_ = llama_batch_init(batchSize_, 0, 1);
        candidates_.resize(vocabSize_);
        // A recurrent state cannot drop the positions of a rejected draft.
        canDraft_ = !llama_model_is_recurrent(llama_get_model(ctx_)) && !llama_model_is_hybrid(llama_get_model(ctx_));

        events_ = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "HearthDecodeLoop", 0, 1);
        events_.Unref(env);
        thread_ = std::thread([this] { Run(); });
        // An environment torn down with a model loaded (a worker thread) stops the loop first. A process that
        // exits is handled in JavaScript ('exit'), before Node.js tears anything down.
        cleanupHook_ = env.AddCleanupHook(OnEnvironmentCleanup, this);
        hookInstalled_ = true;
    }

    ~DecodeLoop() override {
        RemoveCleanupHook(Env());
        Shutdown();
    }

private:
    Napi::ObjectReference contextRef_;
    Napi::ObjectReference modelRef_;
    llama_context* ctx_ = nullptr;
    const llama_vocab* vocab_ = nullptr;
    int32_t vocabSize_ = 0;
    int32_t batchSize_ = 0;
    llama_batch batch_{};
    std::vector<llama_token_data> candidates_;
    bool canDraft_ = false;
    std::vector<llama_token> draft_;  // the loop thread's scratch for a proposal
    std::chrono::steady_clock::time_point stepStart_;  // when the step being run began (its drafts included)

    Napi::ThreadSafeFunction events_;
    Napi::Env::CleanupHook<void (*)(DecodeLoop*), DecodeLoop> cleanupHook_;
    bool hookInstalled_ = false;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool closing_ = false;
    bool shutDown_ = false;
    // Guarded by mutex_: false while the loop thread waits for work, so JavaScript may edit the cache itself.
    bool working_ = false;
    // Guarded by mutex_: what JavaScript asked for since the loop last looked.
    std::deque<std::unique_ptr<Generation>> starts_;
    std::vector<double> stops_;
    std::vector<std::pair<double, int32_t>> acks_;
    std::deque<Edit> edits_;
    // Owned by the loop thread.
    std::map<int32_t, std::unique_ptr<Generation>> running_;
    // The model's projector, set before any generation with images starts.
    std::shared_ptr<hearth::ProjectorState> projector_;
    Napi::ObjectReference projectorRef_;
    // The draft model's context (--draft-model), set before any generation starts; driven on the loop thread only.
    std::unique_ptr<hearth::DraftModel> draftModel_;
    Napi::ObjectReference draftContextRef_;
    Napi::ObjectReference draftModelRef_;

    // setDraftModel(context, model, expected, minProbability): node-llama-cpp's context and model objects of a draft
    // model, checked as the target's are, whose sequences mirror the target's. Throws when its vocabulary does not match.
    Napi::Value SetDraftModel(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsObject() || !info[3].IsNumber())
            throw Napi::TypeError::New(env, "setDraftModel(context, model, expected, minProbability)");
        llama_context* draft = CheckedContextArgs(info);
        const std::string mismatch = hearth::VocabularyMismatch(vocab_, llama_model_get_vocab(llama_get_model(draft)));
        if (!mismatch.empty())
            throw Napi::Error::New(env, "The draft model's vocabulary does not match the model's: " + mismatch);
        if (llama_n_seq_max(draft) < llama_n_seq_max(ctx_))
            throw Napi::Error::New(env, "The draft model's context has fewer sequences than the model's");
        std::lock_guard<std::mutex> lock(mutex_);
        if (working_ || !running_.empty() || !starts_.empty())
            throw Napi::Error::New(env, "The draft model can only be set while nothing generates");
        draftModel_ = std::make_unique<hearth::DraftModel>(draft, vocabSize_, static_cast<float>(info[3].As<Napi::Number>().DoubleValue()));
        draftContextRef_ = Napi::Persistent(info[0].As<Napi::Object>());
        draftModelRef_ = Napi::Persistent(info[1].As<Napi::Object>());
        return env.Undefined();
    }

    // setProjector(projector): the projector whose image chunks generations may carry.
    Napi::Value SetProjector(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        std::shared_ptr<hearth::ProjectorState> state = hearth::ProjectorOf(env, info[0]);
        std::lock_guard<std::mutex> lock(mutex_);
        if (working_ || !running_.empty() || !starts_.empty())
            throw Napi::Error::New(env, "The projector can only be set while nothing generates");
        projector_ = std::move(state);
        projectorRef_ = Napi::Persistent(info[0].As<Napi::Object>());
        return env.Undefined();
    }

    // info(): what the loop runs on, for the checks JavaScript makes when it starts.
    Napi::Value Info(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        Napi::Object result = Napi::Object::New(env);
        result.Set("sequences", Napi::Number::New(env, llama_n_seq_max(ctx_)));
        result.Set("batchSize", Napi::Number::New(env, batchSize_));
        return result;
    }

    // start(id, sequence, position, tokens: Uint32Array, options)
    Napi::Value Start(const Napi::CallbackInfo& info) {
        Napi::Env env = info.Env();
        if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsTypedArray() || !info[4].IsObject())
            throw Napi::TypeError::New(env, "start(id, sequence, position, tokens, options)");
        auto generation = std::make_unique<Generation>();
        generation->id = info[0].As<Napi::Number>().DoubleValue();
        generation->sequence = info[1].As<Napi::Number>().Int32Value();
        generation->position = info[2].As<Napi::Number>().Int32Value();
        generation->startPosition = generation->position;
        Napi::Uint32Array tokens = info[3].As<Napi::Uint32Array>();
        if (tokens.ElementLength() == 0)
            throw Napi::RangeError::New(env, "Nothing to evaluate");
        if (generation->sequence < 0 || generation->sequence >= static_cast<int32_t>(llama_n_seq_max(ctx_)))
            throw Napi::RangeError::New(env, "No such sequence");
        generation->input.reserve(tokens.ElementLength());
        for (size_t index = 0; index < tokens.ElementLength(); index++) {
            if (tokens[index] >= static_cast<uint32_t>(vocabSize_))
                throw Napi::RangeError::New(env, "Token id out of range");
            generation->input.push_back(static_cast<llama_token>(tokens[index]));
        }

        Napi::Object options = info[4].As<Napi::Object>();
        auto number = [&](const char* name, double fallback) {
            Napi::Value value = options.Get(name);
            return value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : fallback;
        };
        generation->budget = static_cast<int32_t>(number("maxTokens", 0));
        if (generation->budget <= 0)
            throw Napi::RangeError::New(env, "maxTokens must be at least 1");
        generation->ignoreEndOfGeneration = options.Get("ignoreEos").ToBoolean().Value();
        Napi::Value images = options.Get("images");
        if (images.IsArray()) {
            Napi::Array list = images.As<Napi::Array>();
            if (list.Length() > 0 && projector_ == nullptr)
                throw Napi::Error::New(env, "The model has no projector to evaluate images with");
            size_t end = 0;
            for (uint32_t index = 0; index < list.Length(); index++) {
                Napi::Object image = list.Get(index).As<Napi::Object>();
                const double offset = image.Get("offset").As<Napi::Number>().DoubleValue();
                const double positions = image.Get("positions").As<Napi::Number>().DoubleValue();
                // Images in order, apart, each followed by input: the last input's logits are sampled, and an image has none.
                if (!(offset >= static_cast<double>(end)) || !(positions >= 1) || offset + positions >= static_cast<double>(generation->input.size()))
                    throw Napi::RangeError::New(env, "Images must lie in order inside the input, with input after the last one");
                hearth::SharedChunk chunk = hearth::ChunkOf(env, image.Get("chunk"));
                generation->images.push_back({static_cast<size_t>(offset), static_cast<llama_pos>(positions), std::move(chunk)});
                end = static_cast<size_t>(offset + positions);
            }
        }
        generation->sampling = CreateSampling(env, options, number);
        generation->drafter = CreateDrafter(env, options, number, generation->sequence);

        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closing_)
                throw Napi::Error::New(env, "The model was unloaded");
            starts_.push_back(std::move(generation));
        }
        wake_.notify_one();
        return env.Undefined();
    }

    template <typename Number>
    std::unique_ptr<Sampling> CreateSampling(Napi::Env env, Napi::Object options, Number number) {
        auto sampling = std::make_unique<Sampling>();
        sampling->chain = llama_sampler_chain_init(llama_sampler_chain_default_params());

        const float repeatPenalty = static_cast<float>(number("repeatPenalty", 1));
        const float frequencyPenalty = static_cast<float>(number("frequencyPenalty", 0));
        const float presencePenalty = static_cast<float>(number("presencePenalty", 0));
        const int32_t penaltyWindow = static_cast<int32_t>(number("penaltyWindow", 64));
        if (penaltyWindow > 0 && (repeatPenalty != 1.0f || frequencyPenalty != 0.0f || presencePenalty != 0.0f)) {
            llama_sampler_chain_add(sampling->chain,
                llama_sampler_init_penalties(vocabSize_, penaltyWindow, repeatPenalty, frequencyPenalty, presencePenalty));
            Napi::Value history = options.Get("penaltyTokens");
            if (history.IsTypedArray()) {
                Napi::Uint32Array tokens = history.As<Napi::Uint32Array>();
                for (size_t index = 0; index < tokens.ElementLength(); index++)
                    llama_sampler_accept(sampling->chain, static_cast<llama_token>(tokens[index]));
            }
        }

        const float temperature = static_cast<float>(number("temperature", 0.8));
        sampling->plainGreedy = temperature <= 0 && llama_sampler_chain_n(sampling->chain) == 0;
        if (temperature <= 0) {
            llama_sampler_chain_add(sampling->chain, llama_sampler_init_greedy());
        } else {
            // The same chain as node-llama-cpp's sampler, so a seed gives the same text with either decode loop.
            const int32_t topK = static_cast<int32_t>(number("topK", 40));
            const float topP = static_cast<float>(number("topP", 0.95));
            const float minP = static_cast<float>(number("minP", 0.05));
            llama_sampler_chain_add(sampling->chain, llama_sampler_init_top_k(topK <= 0 ? vocabSize_ : std::min(topK, vocabSize_)));
            if (topP != 1 && topP >= 0 && topP <= 1)
                llama_sampler_chain_add(sampling->chain, llama_sampler_init_top_p(topP, 1));
            if (minP > 0)
                llama_sampler_chain_add(sampling->chain, llama_sampler_init_min_p(minP, 1));
            llama_sampler_chain_add(sampling->chain, llama_sampler_init_temp(temperature));
            llama_sampler_chain_add(sampling->chain, llama_sampler_init_dist(static_cast<uint32_t>(number("seed", 0))));
        }

        Napi::Value grammar = options.Get("grammar");
        if (grammar.IsString()) {
            Napi::Value root = options.Get("grammarRoot");
            const std::string text = grammar.As<Napi::String>().Utf8Value();
            const std::string rootName = root.IsString() ? root.As<Napi::String>().Utf8Value() : "root";
            sampling->grammar = llama_sampler_init_grammar(vocab_, text.c_str(), rootName.c_str());
            if (sampling->grammar == nullptr)
                throw Napi::Error::New(env, "The grammar could not be parsed");
        }
        Napi::Value banned = options.Get("bannedTokens");
        if (banned.IsTypedArray()) {
            Napi::Uint32Array tokens = banned.As<Napi::Uint32Array>();
            sampling->banned.reserve(tokens.ElementLength());
            for (size_t index = 0; index < tokens.ElementLength(); index++) {
                if (tokens[index] >= static_cast<uint32_t>(vocabSize_))
                    throw Napi::RangeError::New(env, "Banned token id out of range");
                sampling->banned.push_back(static_cast<llama_token>(tokens[index]));
            }
        }
        sampling->topLogprobs = static_cast<int32_t>(number("topLogprobs", -1));
        return sampling;
    }

    // A drafter when the options ask for drafting (draftMode 1: ngram, 2: auto), the model can drop rejected
    // positions and has no projector: the history it drafts from (draftContext, the reply from draftReplyStart), a
    // prediction's tokens, whether n-grams of the history draft too (draftNgram, 0: only the prediction), and whether
    // the draft model does (draftModel, 1: where the loop has one).
    template <typename Number>
    std::unique_ptr<hearth::Drafter> CreateDrafter(Napi::Env env, Napi::Object options, Number number, int32_t sequence) {
        const int32_t mode = static_cast<int32_t>(number("draftMode", 0));
        // A model that sees images does not draft: on Mesa's software Vulkan device (lavapipe) the decode of an image
        // after batches with drafts (several logits per sequence) crashed inside the driver, and nothing else showed why.
        if (!canDraft_ || projector_ != nullptr || (mode != static_cast<int32_t>(hearth::DraftMode::Ngram) && mode != static_cast<int32_t>(hearth::DraftMode::Auto)))
            return nullptr;
        auto tokens = [&](const char* name) {
            std::vector<llama_token> list;
            Napi::Value value = options.Get(name);
            if (!value.IsTypedArray())
                return list;
            Napi::Uint32Array array = value.As<Napi::Uint32Array>();
            list.reserve(array.ElementLength());
            for (size_t index = 0; index < array.ElementLength(); index++) {
                // Anything outside the vocabulary (an image's positions) is kept as a token that matches nothing.
                list.push_back(array[index] < static_cast<uint32_t>(vocabSize_) ? static_cast<llama_token>(array[index]) : -1);
            }
            return list;
        };
        std::vector<llama_token> prediction = tokens("prediction");
        if (std::find(prediction.begin(), prediction.end(), -1) != prediction.end())
            throw Napi::RangeError::New(env, "Prediction token id out of range");
        const int32_t max = static_cast<int32_t>(number("draftMax", 16));
        if (max < 1)
            throw Napi::RangeError::New(env, "draftMax must be at least 1");
        std::unique_ptr<hearth::ModelDrafts> model;
        if (draftModel_ != nullptr && number("draftModel", 0) != 0)
            model = std::make_unique<hearth::SequenceDrafts>(*draftModel_, sequence);
        return std::make_unique<hearth::Drafter>(static_cast<hearth::DraftMode>(mode), max, tokens("draftContext"),
            static_cast<size_t>(std::max(0.0, number("draftReplyStart", 0))), std::move(prediction), number("draftNgram", 1) != 0, std::move(model));
    }

    // stop(id): that generation ends after the batch in flight (nothing happens if it has ended).
    Napi::Value Stop(const Napi::CallbackInfo& info) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stops_.push_back(info[0].As<Napi::Number>().DoubleValue());
        }
        wake_.notify_one();
        return info.Env().Undefined();
    }

    // ack(id, count): JavaScript has taken `count` more tokens of that generation (see kReadAhead).
    Napi::Value Ack(const Napi::CallbackInfo& info) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            acks_.emplace_back(info[0].As<Napi::Number>().DoubleValue(), info[1].As<Napi::Number>().Int32Value());
        }
        wake_.notify_one();
        return info.Env().Undefined();
    }

    // truncate(requestId, sequence, keep): keeps the first `keep` positions of a sequence. Like every edit, made at once
    // while the loop waits for work, returning its result; else made between batches, in the order asked, and reported by
    // an Edited event (and undefined is returned).
    Napi::Value Truncate(const Napi::CallbackInfo& info) {
        return Queue(info.Env(), {EditKind::Truncate, info[0].As<Napi::Number>().Int32Value(), SequenceArg(info, 1), info[2].As<Napi::Number>().Int32Value()});
    }

    // copy(requestId, sequence, source, keep): the sequence holds the first `keep` positions of `source` instead of its own.
    Napi::Value Copy(const Napi::CallbackInfo& info) {
        Edit edit{EditKind::Copy, info[0].As<Napi::Number>().Int32Value(), SequenceArg(info, 1), info[3].As<Napi::Number>().Int32Value()};
        edit.source = SequenceArg(info, 2);
        return Queue(info.Env(), std::move(edit));
    }

    // save(requestId, sequence, state, maxBytes): the sequence's state into a SequenceState; 1 when saved, 0 when not.
    Napi::Value Save(const Napi::CallbackInfo& info) {
        Edit edit{EditKind::Save, info[0].As<Napi::Number>().Int32Value(), SequenceArg(info, 1)};
        edit.state = hearth::StateOf(info.Env(), info[2]);
        edit.maxBytes = info[3].As<Napi::Number>().DoubleValue();
        return Queue(info.Env(), std::move(edit));
    }

    // restore(requestId, sequence, state, keep): the sequence holds the first `keep` positions of a saved state.
    Napi::Value Restore(const Napi::CallbackInfo& info) {
        Edit edit{EditKind::Restore, info[0].As<Napi::Number>().Int32Value(), SequenceArg(info, 1), info[3].As<Napi::Number>().Int32Value()};
        edit.state = hearth::StateOf(info.Env(), info[2]);
        return Queue(info.Env(), std::move(edit));
    }

    int32_t SequenceArg(const Napi::CallbackInfo& info, size_t index) {
        const int32_t sequence = info[index].As<Napi::Number>().Int32Value();
        if (sequence < 0 || sequence >= static_cast<int32_t>(llama_n_seq_max(ctx_)))
            throw Napi::RangeError::New(info.Env(), "No such sequence");
        return sequence;
    }

    Napi::Value Queue(Napi::Env env, Edit edit) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closing_)
                throw Napi::Error::New(env, "The model was unloaded");
            if (!working_ && starts_.empty() && edits_.empty())
                return Napi::Number::New(env, ApplyEdit(edit));
            edits_.push_back(std::move(edit));
        }
        wake_.notify_one();
        return env.Undefined();
    }

    // Called with mutex_ held, while no batch runs. A copy or a truncation is mirrored in the draft model's context, so
    // that a prefix copied from another slot is not decoded there again (a restore is not: the draft model's sequence
    // drops what differs from the restored tokens before its next draft).
    int32_t ApplyEdit(const Edit& edit) {
        switch (edit.kind) {
        case EditKind::Copy: {
            const int32_t kept = hearth::CopyPrefix(ctx_, edit.sequence, edit.source, edit.keep);
            if (draftModel_ != nullptr)
                draftModel_->Copy(edit.sequence, edit.source, kept);
            return kept;
        }
        case EditKind::Save:
            return hearth::SaveSequence(ctx_, edit.sequence, *edit.state, edit.maxBytes) ? 1 : 0;
        case EditKind::Restore:
            return hearth::RestoreSequence(ctx_, edit.sequence, *edit.state, edit.keep);
        case EditKind::Truncate:
            break;
        }
        const int32_t kept = hearth::KeepPrefix(ctx_, edit.sequence, edit.keep);
        if (draftModel_ != nullptr)
            draftModel_->Keep(edit.sequence, kept);
        return kept;
    }

    // keepAlive(bool): while work is under way, the pending events keep Node.js running.
    Napi::Value KeepAlive(const Napi::CallbackInfo& info) {
        if (!shutDown_) {
            if (info[0].ToBoolean().Value())
                events_.Ref(info.Env());
            else
                events_.Unref(info.Env());
        }
        return info.Env().Undefined();
    }

    static void OnEnvironmentCleanup(DecodeLoop* loop) {
        loop->hookInstalled_ = false;  // node-addon-api frees the hook after this call
        loop->Shutdown();
    }

    void RemoveCleanupHook(Napi::Env env) {
        if (hookInstalled_) {
            hookInstalled_ = false;
            cleanupHook_.Remove(env);
        }
    }

    // close(): stops the loop after the batch in flight and waits for it; the context can then go.
    Napi::Value Close(const Napi::CallbackInfo& info) {
        RemoveCleanupHook(info.Env());
        Shutdown();
        contextRef_.Reset();
        modelRef_.Reset();
        draftContextRef_.Reset();
        draftModelRef_.Reset();
        return info.Env().Undefined();
    }

    // Stops the loop thread after the batch in flight.
    void StopThread() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            closing_ = true;
        }
        wake_.notify_one();
        if (thread_.joinable())
            thread_.join();
    }

    void Shutdown() {
        if (shutDown_)
            return;
        shutDown_ = true;
        StopThread();
        running_.clear();
        starts_.clear();
        draftModel_.reset();
        llama_batch_free(batch_);
        events_.Release();
    }

    void Post(Events* events) {
        if (events->empty()) {
            delete events;
            return;
        }
        const napi_status status = events_.NonBlockingCall(events, [](Napi::Env env, Napi::Function callback, Events* events) {
            std::unique_ptr<Events> owned(events);
            if (env == nullptr || callback.IsEmpty())
                return;
            Napi::Array list = Napi::Array::New(env, events->size());
            uint32_t index = 0;
            for (const Event& event : *events) {
                Napi::Object item = Napi::Object::New(env);
                item.Set("kind", Napi::Number::New(env, static_cast<int32_t>(event.kind)));
                item.Set("sequence", Napi::Number::New(env, event.sequence));
                item.Set("value", Napi::Number::New(env, event.value));
                item.Set("count", Napi::Number::New(env, event.count));
                if (event.kind == EventKind::Token && !std::isnan(event.logprob)) {
                    item.Set("logprob", Napi::Number::New(env, event.logprob));
                    Napi::Array top = Napi::Array::New(env, event.top.size() * 2);
                    for (size_t position = 0; position < event.top.size(); position++) {
                        top.Set(static_cast<uint32_t>(position * 2), Napi::Number::New(env, event.top[position].first));
                        top.Set(static_cast<uint32_t>(position * 2 + 1), Napi::Number::New(env, event.top[position].second));
                    }
                    item.Set("top", top);
                }
                if (event.kind == EventKind::Failed)
                    item.Set("message", Napi::String::New(env, event.message));
                if (event.drafting) {
                    Napi::Array drafts = Napi::Array::New(env, 6);
                    drafts.Set(0u, Napi::Number::New(env, event.drafts.predictionDrafted));
                    drafts.Set(1u, Napi::Number::New(env, event.drafts.predictionAccepted));
                    drafts.Set(2u, Napi::Number::New(env, event.drafts.ngramDrafted));
                    drafts.Set(3u, Napi::Number::New(env, event.drafts.ngramAccepted));
                    drafts.Set(4u, Napi::Number::New(env, event.drafts.modelDrafted));
                    drafts.Set(5u, Napi::Number::New(env, event.drafts.modelAccepted));
                    item.Set("drafts", drafts);
                }
                list.Set(index++, item);
            }
            callback.Call({list});
        });
        if (status != napi_ok)
            delete events;
    }

    void Run() {
        for (;;) {
            auto events = std::make_unique<Events>();
            {
                std::unique_lock<std::mutex> lock(mutex_);
                working_ = false;
                wake_.wait(lock, [this] {
                    return closing_ || !starts_.empty() || !stops_.empty() || !acks_.empty() || !edits_.empty() || AnyRunnable();
                });
                if (closing_)
                    return;
                working_ = true;
                // Starts first, so that a generation stopped before the loop saw it start is stopped too.
                while (!starts_.empty()) {
                    std::unique_ptr<Generation> generation = std::move(starts_.front());
                    starts_.pop_front();
                    const int32_t sequence = generation->sequence;
                    if (running_.count(sequence) != 0) {
                        events->push_back({EventKind::Failed, sequence, 0, 0, NAN, {}, "The sequence is already generating"});
                        continue;
                    }
                    running_[sequence] = std::move(generation);
                }
                for (double id : stops_)
                    for (auto& [sequence, generation] : running_)
                        if (generation->id == id)
                            generation->stopRequested = true;
                stops_.clear();
                for (const auto& [id, count] : acks_)
                    for (auto& [sequence, generation] : running_)
                        if (generation->id == id)
                            generation->read += count;
                acks_.clear();
                while (!edits_.empty()) {
                    const Edit edit = std::move(edits_.front());
                    edits_.pop_front();
                    events->push_back({EventKind::Edited, edit.sequence, ApplyEdit(edit), edit.requestId, NAN, {}, {}});
                }
            }
            for (auto iterator = running_.begin(); iterator != running_.end();) {
                Generation& generation = *iterator->second;
                if (generation.stopRequested) {
                    events->push_back(Ended(generation, EndReason::Stopped));
                    iterator = running_.erase(iterator);
                } else {
                    ++iterator;
                }
            }
            if (!running_.empty()) {
                try {
                    Step(*events);
                } catch (const std::exception& error) {
                    FailAll(*events, std::string("Decoding failed: ") + error.what());
                }
            }
            Post(events.release());
        }
    }

    // Whether a batch has anything to do: a generation to stop, or one that is not waiting for its reader.
    bool AnyRunnable() const {
        for (const auto& [sequence, generation] : running_)
            if (generation->stopRequested || !HeldBack(*generation))
                return true;
        return false;
    }

    // Ends every running generation with an error, dropping their sequences from the cache.
    void FailAll(Events& events, const std::string& message) {
        llama_memory_t memory = llama_get_memory(ctx_);
        for (auto& [sequence, generation] : running_) {
            llama_memory_seq_rm(memory, sequence, -1, -1);
            events.push_back({EventKind::Failed, sequence, 0, 0, NAN, {}, message});
        }
        running_.clear();
    }

    // What a batch holds of one generation: `count` tokens of its input, from where it has got to.
    struct Item {
        Generation* generation;
        int32_t count;
    };

    // Evaluates, each alone, the images that the input of a generation has reached: an image may need the whole
    // context to attend non-causally while it decodes, so it never shares a batch.
    void EvaluateImages(Events& events) {
        for (auto iterator = running_.begin(); iterator != running_.end();) {
            Generation& generation = *iterator->second;
            bool failed = false;
            while (!generation.stopRequested && !generation.images.empty() && generation.inputDone == generation.images.front().offset) {
                const PendingImage& image = generation.images.front();
                std::string error;
                const llama_pos next = projector_ == nullptr ? -1
                    : hearth::EvaluateImage(*projector_, ctx_, image.chunk.get(), generation.sequence, generation.position, batchSize_, error);
                if (next < 0) {
                    llama_memory_seq_rm(llama_get_memory(ctx_), generation.sequence, -1, -1);
                    events.push_back({EventKind::Failed, generation.sequence, 0, 0, NAN, {}, error.empty() ? "The model has no projector" : error});
                    failed = true;
                    break;
                }
                generation.inputDone += static_cast<size_t>(image.positions);
                generation.position += image.positions;
                generation.images.pop_front();
            }
            iterator = failed ? running_.erase(iterator) : std::next(iterator);
        }
    }

    // One batch: build, decode, sample.
    void Step(Events& events) {
        stepStart_ = std::chrono::steady_clock::now();
        EvaluateImages(events);
        std::vector<Item> items;
        int32_t room = batchSize_;
        // Room for drafts once every generating sequence has its one token.
        int32_t spare = room;
        for (const auto& [sequence, generation] : running_)
            if (generation->input.size() - generation->inputDone == 1 && !HeldBack(*generation))
                spare--;
        // Generating sequences first, one token each and their drafts; then prompt chunks fill the rest.
        for (int pass = 0; pass < 2 && room > 0; pass++) {
            for (auto& [sequence, generation] : running_) {
                int32_t left = static_cast<int32_t>(generation->input.size() - generation->inputDone);
                // A drafting sequence is already in the batch: its input is more than one token only for this batch.
                if ((pass == 0) != (left == 1) || left == 0 || room == 0 || HeldBack(*generation) || generation->drafted > 0)
                    continue;
                if (pass == 0 && generation->drafter != nullptr && generation->images.empty()) {
                    // A draft never takes the sequence past its budget: what it writes into the cache stays within
                    // what the tokens the generation may still sample would have written.
                    const int32_t limit = std::min({spare, room - 1, generation->budget - generation->sampled - 1});
                    AddDraft(*generation, limit);
                    spare -= generation->drafted;
                    left += generation->drafted;
                }
                // Text up to the next image; the image is evaluated alone at the start of a later step.
                const int32_t untilImage = generation->images.empty() ? left
                    : static_cast<int32_t>(generation->images.front().offset - generation->inputDone);
                if (untilImage <= 0)
                    continue;
                const int32_t count = std::min({left, room, untilImage});
                items.push_back({generation.get(), count});
                room -= count;
            }
        }
        if (items.empty())
            return;

        int32_t status = Decode(items, events);
        if (status == 0)
            return;
        if (status == 1 && DropDrafts(items))
            status = Decode(items, events);
        if (status == 0)
            return;
        if (items.size() == 1) {
            Fail(*items.front().generation, status, events);
            return;
        }
        // llama.cpp refuses a whole batch for one sequence it cannot take (its slot's context is full) and keeps
        // none of it: each is decoded again alone, so that only the one at fault fails.
        for (const Item& item : items) {
            const int32_t own = Decode({item}, events);
            if (own != 0)
                Fail(*item.generation, own, events);
        }
    }

    // Appends to a generating sequence's input what its drafter proposes (at most `limit` tokens), cut before a token
    // that the grammar or the banned tokens refuse or that ends the generation: the sampler could not pick it.
    void AddDraft(Generation& generation, int32_t limit) {
        generation.drafted = 0;
        generation.draftSource = hearth::DraftSource::None;
        if (limit <= 0)
            return;
        const hearth::DraftSource source = generation.drafter->Propose(limit, draft_);
        if (source == hearth::DraftSource::None)
            return;
        Sampling& sampling = *generation.sampling;
        llama_sampler* grammar = sampling.grammar != nullptr ? llama_sampler_clone(sampling.grammar) : nullptr;
        size_t allowed = 0;
        for (; allowed < draft_.size(); allowed++) {
            const llama_token token = draft_[allowed];
            if ((!generation.ignoreEndOfGeneration && llama_vocab_is_eog(vocab_, token))
                    || std::find(sampling.banned.begin(), sampling.banned.end(), token) != sampling.banned.end())
                break;
            if (grammar != nullptr) {
                llama_token_data single{token, 1.0f, 0.0f};
                llama_token_data_array check{&single, 1, -1, false};
                llama_sampler_apply(grammar, &check);
                if (single.logit == -INFINITY)
                    break;
                llama_sampler_accept(grammar, token);
            }
        }
        if (grammar != nullptr)
            llama_sampler_free(grammar);
        if (allowed == 0)
            return;
        generation.input.insert(generation.input.end(), draft_.begin(), draft_.begin() + static_cast<std::ptrdiff_t>(allowed));
        generation.drafted = static_cast<int32_t>(allowed);
        generation.draftSource = source;
    }

    // Takes the drafts out of a batch that the cache had no room for (a draft briefly takes cells of its own): the
    // batch is then what it would have been without them. False when there were none.
    bool DropDrafts(std::vector<Item>& items) {
        bool dropped = false;
        for (Item& item : items) {
            Generation& generation = *item.generation;
            if (generation.drafted == 0)
                continue;
            generation.input.resize(generation.input.size() - static_cast<size_t>(generation.drafted));
            item.count -= generation.drafted;
            generation.drafter->Verified(generation.draftSource, 0, 0);
            generation.drafted = 0;
            generation.draftSource = hearth::DraftSource::None;
            dropped = true;
        }
        return dropped;
    }

    // Ends a generation whose input could not be decoded, dropping its sequence from the cache (nobody can tell
    // what of it the cache kept).
    void Fail(Generation& generation, int32_t status, Events& events) {
        const int32_t sequence = generation.sequence;
        const std::string message = status == 1
            ? "The context is full: no room in the KV cache for this batch"
            : "Decoding failed (llama_decode returned " + std::to_string(status) + ")";
        llama_memory_seq_rm(llama_get_memory(ctx_), sequence, -1, -1);
        events.push_back({EventKind::Failed, sequence, 0, 0, NAN, {}, message});
        running_.erase(sequence);
    }

    // Decodes `items` as one batch, then samples the next token of each whose input it completed. Returns
    // llama_decode's status: when it is not 0, nothing has changed.
    int32_t Decode(const std::vector<Item>& items, Events& events) {
        std::vector<int32_t> logitIndexes(items.size(), -1);  // -1: no token sampled from that item
        batch_.n_tokens = 0;
        for (size_t position = 0; position < items.size(); position++) {
            const Item& item = items[position];
            Generation& generation = *item.generation;
            for (int32_t offset = 0; offset < item.count; offset++) {
                const int32_t index = batch_.n_tokens++;
                batch_.token[index] = generation.input[generation.inputDone + offset];
                batch_.pos[index] = generation.position + offset;
                batch_.n_seq_id[index] = 1;
                batch_.seq_id[index][0] = generation.sequence;
                batch_.logits[index] = 0;
            }
            if (generation.inputDone + item.count == generation.input.size()) {
                logitIndexes[position] = batch_.n_tokens - 1;
                // The last input token's logits, and each drafted token's: every position of a draft is sampled.
                for (int32_t back = 0; back <= generation.drafted; back++)
                    batch_.logits[logitIndexes[position] - back] = 1;
            }
        }

        const int32_t status = llama_decode(ctx_, batch_);
        if (status != 0)
            return status;

        for (size_t position = 0; position < items.size(); position++) {
            Generation& generation = *items[position].generation;
            generation.inputDone += items[position].count;
            generation.position += items[position].count;
            if (logitIndexes[position] < 0)
                continue;
            // A step that decoded only the generation's last token and its draft times what a token costs it.
            Verify(generation, logitIndexes[position], events, items[position].count == generation.drafted + 1);
        }
        return 0;
    }

    // Samples a generation whose input the batch completed: its next token from the last input token's logits and, when
    // the input ended with a draft, one token for each drafted position after it, as long as each sampled token is the
    // drafted one (the sampler then saw the same tokens as without the draft). The first token that differs is the
    // next input; the positions after it are dropped from the cache. `lastIndex`: the batch index of the input's end.
    void Verify(Generation& generation, int32_t lastIndex, Events& events, bool timed) {
        const int32_t sampledBefore = generation.sampled;
        const int32_t drafted = generation.drafted;
        const hearth::DraftSource source = generation.draftSource;
        generation.drafted = 0;
        generation.draftSource = hearth::DraftSource::None;
        const llama_pos first = generation.position - 1 - drafted;  // the position of the token before the draft
        const int32_t firstIndex = lastIndex - drafted;
        const llama_token* draft = generation.input.data() + generation.input.size() - drafted;
        const int32_t sequence = generation.sequence;
        int32_t step = 0;
        int32_t accepted = 0;
        llama_token next = LLAMA_TOKEN_NULL;
        bool ended = false;
        EndReason reason = EndReason::Stopped;
        for (;; step++) {
            Event event{EventKind::Token, sequence, 0, 0, NAN, {}, {}};
            const llama_token token = Sample(generation, firstIndex + step, event);
            if (token == LLAMA_TOKEN_NULL || (!generation.ignoreEndOfGeneration && llama_vocab_is_eog(vocab_, token))) {
                ended = true;
                reason = token == LLAMA_TOKEN_NULL ? EndReason::NothingSampled : EndReason::EndOfGeneration;
                break;
            }
            event.value = token;
            events.push_back(std::move(event));
            generation.sampled++;
            if (generation.drafter != nullptr)
                generation.drafter->Append(token);
            const bool matches = step < drafted && draft[step] == token;
            if (matches)
                accepted++;
            if (generation.sampled >= generation.budget) {
                ended = true;
                reason = EndReason::Budget;
                break;
            }
            if (!matches) {
                next = token;
                break;
            }
        }
        // The cache keeps the token before the draft and the `step` drafted tokens the sampler agreed with.
        generation.position = first + 1 + step;
        if (drafted > step && !llama_memory_seq_rm(llama_get_memory(ctx_), sequence, generation.position, -1)) {
            Fail(generation, -1, events);
            return;
        }
        if (generation.drafter != nullptr)
            generation.drafter->Verified(source, drafted, accepted);
        if (generation.drafter != nullptr && timed && generation.sampled > sampledBefore)
            generation.drafter->Timed(std::chrono::duration<double>(std::chrono::steady_clock::now() - stepStart_).count(),
                generation.sampled - sampledBefore, source);
        if (ended) {
            events.push_back(Ended(generation, reason));
            running_.erase(sequence);
            return;
        }
        generation.input.assign(1, next);
        generation.inputDone = 0;
    }

    // Every token as a candidate, at its own index, with the banned ones at -inf.
    void FillCandidates(const float* logits, const Sampling& sampling, llama_token_data_array& current) {
        for (int32_t token = 0; token < vocabSize_; token++)
            candidates_[token] = llama_token_data{token, logits[token], 0.0f};
        for (const llama_token token : sampling.banned)
            candidates_[token].logit = -INFINITY;
        current = llama_token_data_array{candidates_.data(), static_cast<size_t>(vocabSize_), -1, false};
    }

    llama_token Sample(Generation& generation, int32_t logitIndex, Event& event) {
        Sampling& sampling = *generation.sampling;
        const float* logits = llama_get_logits_ith(ctx_, logitIndex);
        if (logits == nullptr)
            return LLAMA_TOKEN_NULL;
        if (sampling.plainGreedy && sampling.grammar == nullptr && sampling.banned.empty()) {
            // What llama.cpp's greedy sampler picks (the first of the highest logits), without copying the vocabulary.
            llama_token best = 0;
            for (llama_token token = 1; token < vocabSize_; token++)
                if (logits[token] > logits[best])
                    best = token;
            llama_sampler_accept(sampling.chain, best);
            if (sampling.topLogprobs >= 0)
                Logprobs(logits, best, sampling.topLogprobs, event);
            return best;
        }
        llama_token_data_array current;
        FillCandidates(logits, sampling, current);
        llama_sampler_apply(sampling.chain, &current);
        if (sampling.grammar != nullptr && current.selected >= 0 && current.selected < static_cast<int64_t>(current.size)) {
            // The token most samples pick is usually allowed; check it alone before constraining every candidate.
            llama_token_data single{current.data[current.selected].id, 1.0f, 0.0f};
            llama_token_data_array check{&single, 1, -1, false};
            llama_sampler_apply(sampling.grammar, &check);
            if (single.logit == -INFINITY) {
                FillCandidates(logits, sampling, current);
                llama_sampler_apply(sampling.grammar, &current);
                llama_sampler_apply(sampling.chain, &current);
            }
        }
        if (current.selected < 0 || current.selected >= static_cast<int64_t>(current.size))
            return LLAMA_TOKEN_NULL;
        const llama_token token = current.data[current.selected].id;
        // A grammar with nothing left to allow (or nothing but banned tokens) leaves every candidate at -inf.
        if ((sampling.grammar != nullptr || !sampling.banned.empty()) && current.data[current.selected].logit == -INFINITY)
            return LLAMA_TOKEN_NULL;
        if (sampling.grammar != nullptr)
            llama_sampler_accept(sampling.grammar, token);
        llama_sampler_accept(sampling.chain, token);
        if (sampling.topLogprobs >= 0)
            Logprobs(logits, token, sampling.topLogprobs, event);
        return token;
    }

    // The model's log probabilities (softmax of the raw logits): the chosen token's and the `top` highest.
    void Logprobs(const float* logits, llama_token token, int32_t top, Event& event) {
        float highest = -INFINITY;
        for (int32_t index = 0; index < vocabSize_; index++)
            highest = std::max(highest, logits[index]);
        double sum = 0;
        for (int32_t index = 0; index < vocabSize_; index++)
            sum += std::exp(static_cast<double>(logits[index] - highest));
        const double logSum = std::log(sum) + highest;
        event.logprob = static_cast<float>(logits[token] - logSum);
        const int32_t count = std::min(top, vocabSize_);
        std::vector<llama_token> order(vocabSize_);
        for (int32_t index = 0; index < vocabSize_; index++)
            order[index] = index;
        std::partial_sort(order.begin(), order.begin() + count, order.end(), [logits](llama_token a, llama_token b) {
            return logits[a] > logits[b];
        });
        event.top.reserve(count);
        for (int32_t index = 0; index < count; index++)
            event.top.emplace_back(order[index], static_cast<float>(logits[order[index]] - logSum));
    }
};

// buildInfo(): what this copy was built for, which JavaScript checks before using it.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("nodeLlamaCpp", Napi::String::New(env, HEARTH_NODE_LLAMA_CPP_VERSION));
    result.Set("libllama", Napi::String::New(env, LinkedLibllama()));
    return result;
}

// The largest tensor, in bytes, that a device runs operations on: ggml's scheduler aborts the process when a
// tensor already in the device's memory (such as a layer's K or V cache) is one it cannot run an operation on, and
// that is decided by size alone for an op-less tensor (Vulkan: its buffer and storage-buffer range limits, 128 MiB on
// lavapipe). Found by asking the device about op-less tensors of halving ranges of size, which allocates nothing.
// -1 when the device takes a tensor of any size (CUDA).
double LargestTensorBytes(ggml_backend_dev_t device) {
    constexpr int64_t unlimited = int64_t(1) << 52;
    ggml_init_params params = {ggml_tensor_overhead() * 2, nullptr, true};
    ggml_context* context = ggml_init(params);
    if (context == nullptr)
        return -1;
    ggml_tensor* tensor = ggml_new_tensor_1d(context, GGML_TYPE_I8, 1);
    const auto supports = [&](int64_t bytes) {
        tensor->ne[0] = bytes;
        tensor->nb[1] = tensor->nb[2] = tensor->nb[3] = static_cast<size_t>(bytes);
        return ggml_backend_dev_supports_op(device, tensor);
    };
    double largest = -1;
    if (!supports(unlimited)) {
        int64_t low = 0;  // the largest size known to be supported (0: none yet)
        int64_t high = unlimited;  // a size known not to be
        while (high - low > 1) {
            const int64_t middle = low + (high - low) / 2;
            if (supports(middle))
                low = middle;
            else
                high = middle;
        }
        largest = static_cast<double>(low);
    }
    ggml_free(context);
    return largest;
}

// gpuDevices(): the GPU and integrated GPU devices of ggml's backend registry, in its order, with their
// free and total memory in bytes, the largest buffer its buffer type allocates (ggml's max size; absent when
// unlimited) and the largest tensor it runs operations on (absent when unlimited).
Napi::Value GpuDevices(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array result = Napi::Array::New(env);
    uint32_t index = 0;
    for (size_t position = 0; position < ggml_backend_dev_count(); position++) {
        ggml_backend_dev_t device = ggml_backend_dev_get(position);
        const enum ggml_backend_dev_type type = ggml_backend_dev_type(device);
        if (type != GGML_BACKEND_DEVICE_TYPE_GPU && type != GGML_BACKEND_DEVICE_TYPE_IGPU)
            continue;
        size_t freeBytes = 0;
        size_t totalBytes = 0;
        ggml_backend_dev_memory(device, &freeBytes, &totalBytes);
        const char* name = ggml_backend_dev_name(device);
        const char* description = ggml_backend_dev_description(device);
        Napi::Object item = Napi::Object::New(env);
        item.Set("index", Napi::Number::New(env, index));
        item.Set("name", Napi::String::New(env, name != nullptr ? name : ""));
        item.Set("description", Napi::String::New(env, description != nullptr ? description : ""));
        item.Set("freeBytes", Napi::Number::New(env, static_cast<double>(freeBytes)));
        item.Set("totalBytes", Napi::Number::New(env, static_cast<double>(totalBytes)));
        ggml_backend_buffer_type_t bufferType = ggml_backend_dev_buffer_type(device);
        const size_t maxBufferBytes = bufferType != nullptr ? ggml_backend_buft_get_max_size(bufferType) : SIZE_MAX;
        if (maxBufferBytes != SIZE_MAX)
            item.Set("maxBufferBytes", Napi::Number::New(env, static_cast<double>(maxBufferBytes)));
        const double maxTensorBytes = LargestTensorBytes(device);
        if (maxTensorBytes >= 0)
            item.Set("maxTensorBytes", Napi::Number::New(env, maxTensorBytes));
        result.Set(index++, item);
    }
    return result;
}

Napi::Value EvaluateImage(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 7 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsObject() || !info[5].IsNumber() || !info[6].IsNumber())
        throw Napi::TypeError::New(env, "evaluateImage(context, model, expected, projector, chunk, sequence, position)");
    llama_context* context = CheckedContextArgs(info);
    auto* worker = new EvaluateImageWorker(env, context, hearth::ProjectorOf(env, info[3]), hearth::ChunkOf(env, info[4]),
        info[5].As<Napi::Number>().Int32Value(), info[6].As<Napi::Number>().Int32Value());
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
}

// The checked llama_context of a call's first three arguments (context, model, expected), as evaluateImage takes them;
// the call has six, the last three numbers but for a SequenceState at `stateIndex` (0: none).
llama_context* ContextArgs(const Napi::CallbackInfo& info, const char* usage, size_t stateIndex) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsObject())
        throw Napi::TypeError::New(env, usage);
    for (size_t index = 3; index < 6; index++)
        if (index != stateIndex && !info[index].IsNumber())
            throw Napi::TypeError::New(env, usage);
    llama_context* context = CheckedContextArgs(info);
    if (info[3].As<Napi::Number>().Uint32Value() >= llama_n_seq_max(context))
        throw Napi::RangeError::New(env, "No such sequence");
    return context;
}

// For the JavaScript decode loop, which calls these between its batches (see sequenceState.h).
// copySequence(context, model, expected, target, source, keep): the positions the target now holds.
Napi::Value CopySequence(const Napi::CallbackInfo& info) {
    llama_context* context = ContextArgs(info, "copySequence(context, model, expected, target, source, keep)", 0);
    if (info[4].As<Napi::Number>().Uint32Value() >= llama_n_seq_max(context))
        throw Napi::RangeError::New(info.Env(), "No such sequence");
    return Napi::Number::New(info.Env(), hearth::CopyPrefix(context, info[3].As<Napi::Number>().Int32Value(),
        info[4].As<Napi::Number>().Int32Value(), info[5].As<Napi::Number>().Int32Value()));
}

// saveSequence(context, model, expected, sequence, state, maxBytes): whether it was saved.
Napi::Value SaveSequenceState(const Napi::CallbackInfo& info) {
    llama_context* context = ContextArgs(info, "saveSequence(context, model, expected, sequence, state, maxBytes)", 4);
    hearth::StateBytes state = hearth::StateOf(info.Env(), info[4]);
    return Napi::Boolean::New(info.Env(), hearth::SaveSequence(context, info[3].As<Napi::Number>().Int32Value(), *state, info[5].As<Napi::Number>().DoubleValue()));
}

// restoreSequence(context, model, expected, sequence, state, keep): the positions kept.
Napi::Value RestoreSequenceState(const Napi::CallbackInfo& info) {
    llama_context* context = ContextArgs(info, "restoreSequence(context, model, expected, sequence, state, keep)", 4);
    hearth::StateBytes state = hearth::StateOf(info.Env(), info[4]);
    return Napi::Number::New(info.Env(), hearth::RestoreSequence(context, info[3].As<Napi::Number>().Int32Value(), *state, info[5].As<Napi::Number>().Int32Value()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    hearth::DefineProjector(env, exports);
#if HEARTH_VISION
    exports.Set("evaluateImage", Napi::Function::New(env, EvaluateImage, "evaluateImage"));
#endif
    exports.Set("DecodeLoop", DecodeLoop::Define(env));
    hearth::DefineSequenceState(env, exports);
    exports.Set("copySequence", Napi::Function::New(env, CopySequence, "copySequence"));
    exports.Set("saveSequence", Napi::Function::New(env, SaveSequenceState, "saveSequence"));
    exports.Set("restoreSequence", Napi::Function::New(env, RestoreSequenceState, "restoreSequence"));
    exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
    exports.Set("gpuDevices", Napi::Function::New(env, GpuDevices, "gpuDevices"));
    return exports;
}

}  // namespace

llama_model* hearth::CheckedModel(Napi::Env env, Napi::Object modelObject) {
    return ModelOf(env, modelObject);
}

NODE_API_MODULE(hearth_decode_loop, Init)
