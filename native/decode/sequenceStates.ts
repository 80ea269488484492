import type {LlamaContext, LlamaModel} from "node-llama-cpp";
import {nativeDecodeLoopTarget} from "../addonAccess.js";
import type {SequenceStates} from "./DecodeLoop.js";
import {sequenceStateAddonFor} from "./NativeDecodeLoop.js";
import type {ContextExpectation} from "./NativeDecodeLoop.js";

/** The addon's sequence state functions bound to a context, for the JavaScript decode loop; undefined where the addon is not loaded. */
export function sequenceStates(model: LlamaModel, context: LlamaContext): SequenceStates | undefined {
    const addon = sequenceStateAddonFor(model.llama);
    if (addon == null)
        return undefined;
    let args: readonly [object, object, ContextExpectation];
    try {
        const target = nativeDecodeLoopTarget(model, context);
        args = [target.context, target.model, target.expected];
        // The addon checks the context on every call, as it does for its own loop: one it refuses gets no prefix sharing.
        const probe = new addon.SequenceState();
        addon.saveSequence(...args, 0, probe, 0);
        probe.free();
    } catch {
        return undefined;
    }
    return {
        create: () => new addon.SequenceState(),
        copy: (sequence, source, keep) => addon.copySequence(...args, sequence, source, keep),
        save: (sequence, state, maxBytes) => addon.saveSequence(...args, sequence, state, maxBytes),
        restore: (sequence, state, keep) => addon.restoreSequence(...args, sequence, state, keep)
    };
}
