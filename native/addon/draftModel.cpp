#include "draftModel.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace hearth {

namespace {

// llama.cpp's server (common/speculative.cpp): vocabularies may differ by this many tokens (added special tokens), and
// the first few ids (control tokens some conversions number differently) are not compared.
constexpr int32_t kMostSizeDifference = 128;
constexpr int32_t kFirstComparedToken = 5;
// A draft token's probability is its share of the likeliest few (llama.cpp's draft sampler keeps the top 10).
constexpr int32_t kTopCandidates = 10;

std::string TokenText(const llama_vocab* vocab, llama_token token) {
    const char* text = llama_vocab_get_text(vocab, token);
    return text != nullptr ? std::string(text) : std::string();
}

}  // namespace

std::string VocabularyMismatch(const llama_vocab* target, const llama_vocab* draft) {
    if (llama_vocab_type(target) != llama_vocab_type(draft))
        return "its tokenizer is of another type (" + std::to_string(llama_vocab_type(draft)) + ", the target's "
            + std::to_string(llama_vocab_type(target)) + ")";
    if (llama_vocab_get_add_bos(target) != llama_vocab_get_add_bos(draft) || llama_vocab_get_add_eos(target) != llama_vocab_get_add_eos(draft)
            || llama_vocab_bos(target) != llama_vocab_bos(draft) || llama_vocab_eos(target) != llama_vocab_eos(draft))
        return "its BOS/EOS tokens differ (BOS " + std::to_string(llama_vocab_bos(draft)) + ", EOS " + std::to_string(llama_vocab_eos(draft))
            + ", the target's " + std::to_string(llama_vocab_bos(target)) + " and " + std::to_string(llama_vocab_eos(target))
            + ", or whether they are added)";
    const int32_t targetSize = llama_vocab_n_tokens(target);
    const int32_t draftSize = llama_vocab_n_tokens(draft);
    if (std::abs(targetSize - draftSize) > kMostSizeDifference)
        return "its vocabulary has " + std::to_string(draftSize) + " tokens, the target's " + std::to_string(targetSize)
            + " (at most " + std::to_string(kMostSizeDifference) + " apart)";
    for (llama_token token = kFirstComparedToken; token < std::min(targetSize, draftSize); token++) {
        const std::string targetText = TokenText(target, token);
        const std::string draftText = TokenText(draft, token);
        if (targetText != draftText)
            return "its token " + std::to_string(token) + " is \"" + draftText + "\", the target's \"" + targetText + "\"";
    }
    return "";
}

DraftModel::DraftModel(llama_context* context, int32_t targetVocabSize, float minProbability)
    : ctx_(context), minProbability_(minProbability) {
    const llama_vocab* vocab = llama_model_get_vocab(llama_get_model(ctx_));
    vocabSize_ = std::min(targetVocabSize, llama_vocab_n_tokens(vocab));
    batchSize_ = static_cast<int32_t>(llama_n_batch(ctx_));
    batch_ = llama_batch_init(batchSize_, 0, 1);
    cached_.resize(llama_n_seq_max(ctx_));
    order_.resize(static_cast<size_t>(std::max(vocabSize_, 1)));
    for (size_t token = 0; token < order_.size(); token++)
        order_[token] = static_cast<llama_token>(token);
}

DraftModel::~DraftModel() {
    llama_batch_free(batch_);
}

void DraftModel::Forget(int32_t sequence) {
    llama_memory_seq_rm(llama_get_memory(ctx_), sequence, -1, -1);
    cached_[sequence].clear();
}

void DraftModel::Keep(int32_t sequence, int32_t keep) {
    if (sequence < 0 || static_cast<size_t>(sequence) >= cached_.size())
        return;
    std::vector<llama_token>& cached = cached_[sequence];
    if (keep < 0 || static_cast<size_t>(keep) >= cached.size())
        return;
    if (!llama_memory_seq_rm(llama_get_memory(ctx_), sequence, keep, -1)) {
        Forget(sequence);
        return;
    }
    cached.resize(static_cast<size_t>(keep));
}

void DraftModel::Copy(int32_t sequence, int32_t source, int32_t keep) {
    if (sequence < 0 || source < 0 || static_cast<size_t>(std::max(sequence, source)) >= cached_.size() || sequence == source)
        return;
    const size_t kept = std::min(cached_[source].size(), static_cast<size_t>(std::max(0, keep)));
    llama_memory_t memory = llama_get_memory(ctx_);
    llama_memory_seq_rm(memory, sequence, -1, -1);
    if (kept > 0)
        llama_memory_seq_cp(memory, source, sequence, 0, static_cast<llama_pos>(kept));
    cached_[sequence].assign(cached_[source].begin(), cached_[source].begin() + static_cast<std::ptrdiff_t>(kept));
}

// Brings the sequence to hold `history`, decoding what it lacks; the last batch ends with the history's last token, whose
// logits the draft starts from.
bool DraftModel::CatchUp(int32_t sequence, const std::vector<llama_token>& history) {
    std::vector<llama_token>& cached = cached_[sequence];
    // The last token is decoded again even when the sequence holds it: its logits are what the draft starts from.
    size_t common = 0;
    const size_t most = std::min(cached.size(), history.size() - 1);
    while (common < most && cached[common] == history[common])
        common++;
    if (common < cached.size()) {
        if (!llama_memory_seq_rm(llama_get_memory(ctx_), sequence, static_cast<llama_pos>(common), -1)) {
            Forget(sequence);
            common = 0;
        }
        cached.resize(common);
    }
    for (size_t start = common; start < history.size();) {
        const size_t count = std::min(history.size() - start, static_cast<size_t>(batchSize_));
        batch_.n_tokens = 0;
        for (size_t offset = 0; offset < count; offset++) {
            const int32_t index = batch_.n_tokens++;
            batch_.token[index] = history[start + offset];
            batch_.pos[index] = static_cast<llama_pos>(start + offset);
            batch_.n_seq_id[index] = 1;
            batch_.seq_id[index][0] = sequence;
            batch_.logits[index] = start + offset == history.size() - 1;
        }
        if (llama_decode(ctx_, batch_) != 0) {
            Forget(sequence);
            return false;
        }
        cached.insert(cached.end(), history.begin() + static_cast<std::ptrdiff_t>(start), history.begin() + static_cast<std::ptrdiff_t>(start + count));
        start += count;
    }
    return true;
}

bool DraftModel::DecodeOne(int32_t sequence, llama_token token, llama_pos position) {
    batch_.n_tokens = 1;
    batch_.token[0] = token;
    batch_.pos[0] = position;
    batch_.n_seq_id[0] = 1;
    batch_.seq_id[0][0] = sequence;
    batch_.logits[0] = 1;
    if (llama_decode(ctx_, batch_) != 0) {
        Forget(sequence);
        return false;
    }
    cached_[sequence].push_back(token);
    return true;
}

bool DraftModel::Draft(int32_t sequence, const std::vector<llama_token>& history, int32_t limit, std::vector<llama_token>& draft) {
    draft.clear();
    if (limit <= 0 || history.empty() || sequence < 0 || static_cast<size_t>(sequence) >= cached_.size())
        return false;
    // An image's positions (negative) have no tokens the draft model could read.
    if (std::any_of(history.begin(), history.end(), [](llama_token token) { return token < 0; }))
        return false;
    // A sequence with no room for the draft would fail its decode, and decode the whole history again at the next draft.
    if (history.size() + static_cast<size_t>(limit) > llama_n_ctx_seq(ctx_))
        return false;
    if (!CatchUp(sequence, history))
        return false;
    const llama_vocab* vocab = llama_model_get_vocab(llama_get_model(ctx_));
    for (int32_t step = 0; step < limit; step++) {
        const float* logits = llama_get_logits_ith(ctx_, -1);
        if (logits == nullptr)
            break;
        // The likeliest token and its probability among the kTopCandidates likeliest, as llama.cpp's draft sampler (top-k
        // 10, then greedy) reports it.
        const int32_t top = std::min(kTopCandidates, static_cast<int32_t>(order_.size()));
        std::partial_sort(order_.begin(), order_.begin() + top, order_.end(),
            [logits](llama_token a, llama_token b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
        const llama_token best = order_[0];
        double sum = 0;
        for (int32_t index = 0; index < top; index++)
            sum += std::exp(static_cast<double>(logits[order_[index]] - logits[best]));
        if (1.0 / sum < minProbability_ || llama_vocab_is_eog(vocab, best))
            break;
        draft.push_back(best);
        if (step + 1 == limit || !DecodeOne(sequence, best, static_cast<llama_pos>(history.size()) + step))
            break;
    }
    return !draft.empty();
}

}  // namespace hearth
