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
// Auto: below this moving acceptance rate a generation stops drafting for a while, at first for kPause tokens, twice as
// long after each further fall (up to kPause << kMostStrikes). Verifying a draft costs about one more token of compute
// per drafted token on a compute-bound backend, so a draft must mostly be right to pay.
constexpr double kThreshold = 0.5;
constexpr int32_t kPause = 16;
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

Drafter::Drafter(DraftMode mode, int32_t max, std::vector<llama_token> history, size_t replyStart, std::vector<llama_token> prediction)
    : mode_(mode), max_(std::max(1, max)), history_(std::move(history)), replyStart_(std::min(replyStart, history_.size())),
      prediction_(std::move(prediction)), rate_(kFirstRate), length_(std::min(max_, kFirstLength)) {
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

// Where to draft from in the history: after the latest earlier occurrence of its longest tail that has one.
bool Drafter::NgramStart(size_t& start) const {
    const size_t shortest = mode_ == DraftMode::Auto ? kShortestAutoMatch : kShortestMatch;
    for (size_t length = std::min(kLongestMatch, history_.size() > 0 ? history_.size() - 1 : 0); length >= shortest; length--) {
        const llama_token* tail = history_.data() + history_.size() - length;
        for (size_t position = history_.size() - length; position-- > 0;) {
            if (history_[position] == tail[0] && SameRun(tail, history_.data() + position, length)) {
                start = position + length;
                return true;
            }
        }
    }
    return false;
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
    } else if (NgramStart(start)) {
        source = &history_;
        kind = DraftSource::Ngram;
    } else {
        return DraftSource::None;
    }
    for (size_t position = start; position < source->size() && draft.size() < static_cast<size_t>(limit); position++) {
        const llama_token token = (*source)[position];
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
    } else {
        counts_.ngramDrafted += drafted;
        counts_.ngramAccepted += accepted;
    }
    if (mode_ != DraftMode::Auto)
        return;
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
