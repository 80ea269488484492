/**
 * The generation pipeline every API shares: a request's options mapped once ({@link toGenerationOptions}), a run
 * that owns its model, slots, cancellation and release ({@link GenerationRun}), and one function that streams or
 * collects its events ({@link answer}) through the API's {@link Encoder}.
 */
export {answer, collectRun, streamRun} from "./answer.js";
export type {Encoder, Run, StreamEncoder} from "./answer.js";
export {ContextWarnings} from "./ContextWarnings.js";
export {GenerationRun} from "./GenerationRun.js";
export type {GenerationContext, GenerationInput, RunRequest} from "./GenerationRun.js";
export {Reply, isFinished, requestedStop} from "./Reply.js";
export {requireProjector} from "./requireProjector.js";
export type {DoneEvent, FinishedReply} from "./Reply.js";
export {optionsForChoice, reasoningForEffort, toGenerationOptions} from "./toGenerationOptions.js";
export type {FieldNames, ReasoningEffort, RequestOptions, RequestedGeneration} from "./toGenerationOptions.js";
