// Drafts from a draft model (`--draft-model`): a small model with the target's vocabulary, run in a llama_context of its
// own on the decode loop's thread. Each slot of the target has a sequence of the same id in the draft context, which
// mirrors the tokens the slot's generation has kept: before each draft, the sequence drops what differs from them (a
// rejected draft, another conversation's prefix) and decodes what it lacks (the prompt, the last kept tokens); then the
// draft model proposes tokens greedily, one decode each, while it is confident of them.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drafting.h"
#include "llama.h"

namespace hearth {

// Why tokens of `draft` cannot stand for the same text in `target`, or "" when they can: the checks llama.cpp's server
// makes for `-md` (vocabulary type, BOS/EOS tokens and whether they are added, a size within a small difference, and the
// text of every token both have, past the first few special ones).
std::string VocabularyMismatch(const llama_vocab* target, const llama_vocab* draft);

class DraftModel {
public:
    // `context`: the draft model's, with at least as many sequences as the target's. `targetVocabSize`: no token at or
    // past it is drafted. `minProbability`: a draft ends before a token the draft model gives less than this (as
    // llama.cpp's `--draft-p-min`).
    DraftModel(llama_context* context, int32_t targetVocabSize, float minProbability);
    ~DraftModel();
    DraftModel(const DraftModel&) = delete;
    DraftModel& operator=(const DraftModel&) = delete;

    // Up to `limit` tokens the draft model expects after `history` (every token of the sequence, the last one the
    // generation's next input), in `draft`; false when it proposes none.
    bool Draft(int32_t sequence, const std::vector<llama_token>& history, int32_t limit, std::vector<llama_token>& draft);
    // The target's cache edits, mirrored: `sequence` holds the first `keep` positions of `source` (or of its own).
    void Copy(int32_t sequence, int32_t source, int32_t keep);
    void Keep(int32_t sequence, int32_t keep);

private:
    bool CatchUp(int32_t sequence, const std::vector<llama_token>& history);
    bool DecodeOne(int32_t sequence, llama_token token, llama_pos position);
    void Forget(int32_t sequence);

    llama_context* ctx_;
    int32_t vocabSize_;
    float minProbability_;
    int32_t batchSize_;
    llama_batch batch_;
    // What each sequence of the draft context holds, position by position.
    std::vector<std::vector<llama_token>> cached_;
    // Token ids, sorted by logit for each drafted token.
    std::vector<llama_token> order_;
};

// The draft model's proposals for one generation, on its slot's sequence.
class SequenceDrafts : public ModelDrafts {
public:
    SequenceDrafts(DraftModel& model, int32_t sequence) : model_(model), sequence_(sequence) {}
    bool Draft(const std::vector<llama_token>& history, int32_t limit, std::vector<llama_token>& draft) override {
        return model_.Draft(sequence_, history, limit, draft);
    }

private:
    DraftModel& model_;
    int32_t sequence_;
};

}  // namespace hearth
