#include "drafting.h"

#include <algorithm>
#include <utility>

namespace hearth {

namespace {

// The longest and shortest tail of the history looked up. One token lines up too often by chance to draft from, but
// a prediction is drafted from its start before the reply has any token, and from where the reply last agreed with it.
constexpr size_t kLongestMatch = 4;
constexpr size_t kShortestMatch = 2;
// Auto drafts from the history only after a match of 3 tokens: two-token matches are common in any text (free text
// repeats "of the"), and drafts from them are mostly refused.
constexpr size_t kShortestAutoMatch = 3;
// The latest occurrences of the history's last token that a lookup compares (a common token occurs thousands of
// times in a long prompt; the latest ones are the likeliest to go on the same way).
constexpr size_t kMostCandidates = 512;
// Auto: below this moving acceptance rate a generation stops drafting for a while, at first for kPause tokens, twice as
// long after each further fall (up to kPause << kMostStrikes). Verifying a draft costs about one more token of compute
// per drafted token on a compute-bound backend, so a draft must mostly be right to pay.
constexpr double kThreshold = 0.5;
constexpr int32_t kPause = 16;
constexpr int32_t kModelPause = 32;
constexpr int32_t kMostStrikes = 5;
// Auto starts with short drafts and doubles them while they are taken whole; the rate starts just above the
// threshold, so that a first draft refused outright pauses drafting.
constexpr int32_t kFirstLength = 4;
constexpr double kFirstRate = 0.75;
constexpr double kRateWeight = 0.4;

bool SameRun(const llama_token* a, const llama_token* b, size_t length) {
    for (size_t index = 0; index < length; index++)
        if (a[index] < 0 || a[index] != b[index])
            return false;
    return true;
}

}  // namespace

Drafter::Drafter(DraftMode mode, int32_t max, std::vector<llama_token> history, size_t replyStart, std::vector<llama_token> prediction,
    bool ngram, std::unique_ptr<ModelDrafts> model)
    : mode_(mode), ngram_(ngram), model_(std::move(model)), max_(std::max(1, max)), history_(std::move(history)), replyStart_(std::min(replyStart, history_.size())),
      givenSize_(history_.size()), prediction_(std::move(prediction)), rate_(kFirstRate), length_(std::min(max_, kFirstLength)),
      ngramLength_(std::min(max_, kFirstLength)) {
    if (history_.size() == replyStart_ && !prediction_.empty())
        cursor_ = 0;
}

void Drafter::Append(llama_token token) {
    history_.push_back(token);
    if (cursor_ >= 0) {
        if (static_cast<size_t>(cursor_) < prediction_.size() && prediction_[cursor_] == token) {
            cursor_++;
            hint_ = static_cast<size_t>(cursor_);
        } else {
            cursor_ = -1;
        }
    }
    if (pause_ > 0)
        pause_--;
    if (modelPause_ > 0)
        modelPause_--;
}

void Drafter::Timed(double seconds, int32_t tokens, DraftSource source) {
    if (mode_ != DraftMode::Auto || model_ == nullptr || tokens <= 0 || source == DraftSource::Prediction || source == DraftSource::Ngram)
        return;
    double& cost = source == DraftSource::Model ? modelCost_ : plainCost_;
    const double perToken = seconds / tokens;
    cost = cost < 0 ? perToken : (1 - kRateWeight) * cost + kRateWeight * perToken;
}

// Auto: whether the draft model may draft now. A step without its drafts is timed first; then while its drafts make a
// token dearer than that, it pauses (kModelPause tokens, twice as long after each further time), and is timed afresh.
bool Drafter::ModelPays() {
    if (mode_ != DraftMode::Auto)
        return true;
    if (modelPause_ > 0 || plainCost_ < 0)
        return false;
    if (modelCost_ > plainCost_) {
        modelPause_ = kModelPause << std::min(modelStrikes_, kMostStrikes);
        modelStrikes_++;
        modelCost_ = -1;
        plainCost_ = -1;
        return false;
    }
    return true;
}

// Where to draft from in the prediction: where the reply stands in it, else after the latest tail of the reply found in
// it (the first occurrence after where they last agreed, else the last one before).
bool Drafter::PredictionStart(size_t& start) {
    if (prediction_.empty())
        return false;
    if (cursor_ < 0) {
        const size_t reply = history_.size() - replyStart_;
        for (size_t length = std::min(kLongestMatch, reply); length >= kShortestMatch && cursor_ < 0; length--) {
            const llama_token* tail = history_.data() + history_.size() - length;
            int64_t before = -1;
            for (size_t position = 0; position + length <= prediction_.size(); position++) {
                if (!SameRun(tail, prediction_.data() + position, length))
                    continue;
                if (position + length >= hint_) {
                    cursor_ = static_cast<int64_t>(position + length);
                    break;
                }
                before = static_cast<int64_t>(position + length);
            }
            if (cursor_ < 0)
                cursor_ = before;
        }
    }
    if (cursor_ < 0 || static_cast<size_t>(cursor_) >= prediction_.size())
        return false;
    start = static_cast<size_t>(cursor_);
    return true;
}

// Sorts the positions of the history as it was given by token (a counting sort, linear in its length and the
// vocabulary), once, on the loop thread, the first time a lookup needs it.
void Drafter::IndexGiven() {
    indexed_ = true;
    llama_token highest = -1;
    for (size_t position = 0; position < givenSize_; position++)
        highest = std::max(highest, history_[position]);
    if (highest < 0)
        return;
    starts_.assign(static_cast<size_t>(highest) + 2, 0);
    for (size_t position = 0; position < givenSize_; position++)
        if (history_[position] >= 0)
            starts_[static_cast<size_t>(history_[position]) + 1]++;
    for (size_t token = 1; token < starts_.size(); token++)
        starts_[token] += starts_[token - 1];
    positions_.resize(starts_.back());
    std::vector<uint32_t> next(starts_.begin(), starts_.end() - 1);
    for (size_t position = 0; position < givenSize_; position++)
        if (history_[position] >= 0)
            positions_[next[static_cast<size_t>(history_[position])]++] = static_cast<uint32_t>(position);
}

// Where to draft from in the history: after the earlier occurrence of its tail that matches longest (the latest of
// those), looked up among the latest occurrences of its last token.
bool Drafter::NgramStart(size_t& start) {
    const size_t shortest = mode_ == DraftMode::Auto ? kShortestAutoMatch : kShortestMatch;
    if (history_.size() <= shortest || history_.back() < 0)
        return false;
    if (!indexed_)
        IndexGiven();
    const llama_token token = history_.back();
    const size_t last = history_.size() - 1;
    size_t bestLength = 0;
    size_t examined = 0;
    // True when the search can end: a longest match, or enough candidates compared.
    auto consider = [&](size_t position) {
        examined++;
        size_t length = 1;
        while (length < kLongestMatch && length <= position && history_[position - length] >= 0
                && history_[position - length] == history_[last - length])
            length++;
        if (length > bestLength) {
            bestLength = length;
            start = position + 1;
        }
        return length == kLongestMatch || examined >= kMostCandidates;
    };
    bool done = false;
    // The reply (appended since) first, latest first; then the history as given, from its index.
    for (size_t position = last; !done && position-- > givenSize_;)
        if (history_[position] == token)
            done = consider(position);
    if (!done && static_cast<size_t>(token) + 1 < starts_.size()) {
        for (size_t index = starts_[static_cast<size_t>(token) + 1]; !done && index-- > starts_[static_cast<size_t>(token)];)
            if (positions_[index] < last)
                done = consider(positions_[index]);
    }
    return bestLength >= shortest;
}

DraftSource Drafter::Propose(int32_t limit, std::vector<llama_token>& draft) {
    draft.clear();
    if (mode_ == DraftMode::Auto) {
        if (pause_ > 0)
            return DraftSource::None;
        limit = std::min(limit, length_);
    }
    limit = std::min(limit, max_);
    if (limit <= 0)
        return DraftSource::None;
    size_t start = 0;
    const std::vector<llama_token>* source = nullptr;
    DraftSource kind = DraftSource::None;
    if (PredictionStart(start)) {
        source = &prediction_;
        kind = DraftSource::Prediction;
    } else if (ngram_ && NgramStart(start)) {
        source = &history_;
        kind = DraftSource::Ngram;
        // Ngram: an n-gram draft is as long as the last ones were taken (see Verified); a prediction's is not cut.
        if (mode_ == DraftMode::Ngram)
            limit = std::min(limit, ngramLength_);
    } else if (model_ != nullptr && ModelPays()) {
        return model_->Draft(history_, limit, draft) ? DraftSource::Model : DraftSource::None;
    } else {
        return DraftSource::None;
    }
    // An n-gram's continuation goes on into the draft itself where it reaches the end of the history: the latest
    // match of a reply that repeats itself (a line, a token) is usually a period back, and its continuation in the
    // history alone is only that period long (one token for a reply that repeats a token), as llama.cpp's n-gram
    // lookup and LZ77's overlapping copies do.
    const size_t size = source->size();
    for (size_t position = start; draft.size() < static_cast<size_t>(limit); position++) {
        if (position >= size && kind != DraftSource::Ngram)
            break;
        const llama_token token = position < size ? (*source)[position] : draft[position - size];
        if (token < 0)
            break;
        draft.push_back(token);
    }
    return draft.empty() ? DraftSource::None : kind;
}

void Drafter::Verified(DraftSource source, int32_t drafted, int32_t accepted) {
    if (source == DraftSource::None || drafted <= 0)
        return;
    if (source == DraftSource::Prediction) {
        counts_.predictionDrafted += drafted;
        counts_.predictionAccepted += accepted;
    } else if (source == DraftSource::Ngram) {
        counts_.ngramDrafted += drafted;
        counts_.ngramAccepted += accepted;
    } else {
        counts_.modelDrafted += drafted;
        counts_.modelAccepted += accepted;
    }
    if (mode_ != DraftMode::Auto) {
        // Every refused token of a draft costs a verified position. Where the history goes on as it did before (an
        // edited file copied from the prompt), drafts are taken whole and grow to the most; elsewhere an n-gram's
        // continuation is mostly refused after a token or two, and a full-length draft verified each time made
        // n-gram drafting slower than none (0.29x on stories260K, bench:spec).
        if (source == DraftSource::Ngram)
            ngramLength_ = accepted == drafted ? std::min(max_, ngramLength_ * 2) : std::max(1, accepted + 1);
        return;
    }
    rate_ = (1 - kRateWeight) * rate_ + kRateWeight * static_cast<double>(accepted) / drafted;
    // A draft taken whole may grow; one cut short is as long as what was taken of it next time (and one more).
    length_ = accepted == drafted ? std::min(max_, length_ * 2) : std::max(1, accepted + 1);
    if (rate_ < kThreshold) {
        pause_ = kPause << std::min(strikes_, kMostStrikes);
        strikes_++;
        rate_ = kFirstRate;
        length_ = std::min(max_, kFirstLength);
    }
}

}  // namespace hearth
