// Drafts for speculative decoding: tokens that probably come next, proposed from a prediction of the reply (OpenAI's
// Predicted Outputs), from n-grams of the prompt and the reply so far, or by a draft model (draftModel.h). The decode loop
// verifies a draft in one batch with the generation's next token and keeps what the sampler agrees with.

#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "llama.h"

namespace hearth {

// `Ngram` drafts whenever the history or the prediction has a match; `Auto` drafts the same way but shortens drafts
// that fail and pauses in a generation whose acceptance falls below what verifying a draft costs.
enum class DraftMode : int32_t { Ngram = 1, Auto = 2 };

enum class DraftSource { None, Prediction, Ngram, Model };

struct DraftCounts {
    int32_t predictionDrafted = 0;
    int32_t predictionAccepted = 0;
    int32_t ngramDrafted = 0;
    int32_t ngramAccepted = 0;
    int32_t modelDrafted = 0;
    int32_t modelAccepted = 0;
};

// A draft model's proposals for one generation: up to `limit` tokens after `history`.
class ModelDrafts {
public:
    virtual ~ModelDrafts() = default;
    virtual bool Draft(const std::vector<llama_token>& history, int32_t limit, std::vector<llama_token>& draft) = 0;
};

class Drafter {
public:
    // `history`: the tokens before the generation's next one (the prompt, then the reply so far), `replyStart` where
    // the reply begins in it; tokens < 0 (image positions) never match. Without `ngram`, only the prediction drafts (and
    // the draft model). With `model`, the draft model drafts where the prediction and n-grams propose nothing.
    Drafter(DraftMode mode, int32_t max, std::vector<llama_token> history, size_t replyStart, std::vector<llama_token> prediction,
        bool ngram = true, std::unique_ptr<ModelDrafts> model = nullptr);

    // Up to `limit` tokens (and at most the drafter's max) that may follow the history, in `draft`.
    DraftSource Propose(int32_t limit, std::vector<llama_token>& draft);
    // A token the generation sampled (and kept), which joins the history.
    void Append(llama_token token);
    // How the last proposal fared: `accepted` of its `drafted` tokens were what the sampler picked.
    void Verified(DraftSource source, int32_t drafted, int32_t accepted);
    // What a step cost: `seconds` for the `tokens` it sampled, with a draft from `source` (None: without a draft).
    void Timed(double seconds, int32_t tokens, DraftSource source);

    const DraftCounts& Counts() const { return counts_; }

private:
    bool PredictionStart(size_t& start);
    bool NgramStart(size_t& start);
    void IndexGiven();

    DraftMode mode_;
    bool ngram_;
    std::unique_ptr<ModelDrafts> model_;
    int32_t max_;
    std::vector<llama_token> history_;
    size_t replyStart_;
    // The history as it was given, indexed by token on first use: its positions sorted by token, and where each
    // token's run of them starts (a token's positions are positions_[starts_[token] .. starts_[token + 1])).
    size_t givenSize_;
    bool indexed_ = false;
    std::vector<uint32_t> starts_;
    std::vector<uint32_t> positions_;
    std::vector<llama_token> prediction_;
    // Where the reply stands in the prediction while they agree (the prediction's next token), else -1.
    int64_t cursor_ = -1;
    // Where they last agreed: a realignment prefers a match after it (the tail of an edited text).
    size_t hint_ = 0;
    DraftCounts counts_;
    // Auto: a moving acceptance rate, the current draft length, and tokens to sample before drafting again.
    double rate_;
    int32_t length_;
    int32_t pause_ = 0;
    int32_t strikes_ = 0;
    // Ngram: how long the next n-gram draft may be, by how the last ones fared.
    int32_t ngramLength_;
    // Auto with a draft model: moving seconds per token of steps with its drafts and without (< 0: not measured yet),
    // and tokens to sample before it drafts again. The draft model costs a decode per drafted token, so acceptance
    // alone does not say whether it pays: its drafts must make a token cheaper than a step without them.
    double modelCost_ = -1;
    double plainCost_ = -1;
    int32_t modelPause_ = 0;
    int32_t modelStrikes_ = 0;
    bool ModelPays();
};

}  // namespace hearth
