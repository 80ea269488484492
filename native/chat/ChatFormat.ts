import {LlamaText, SpecialToken, SpecialTokensText, resolveChatWrapper} from "node-llama-cpp";
import type {ChatHistoryItem, ChatModelFunctions, ChatModelResponse, ChatWrapper, ChatWrapperGeneratedContextState, LlamaModel,
    ResolvableChatWrapperTypeName, Token} from "node-llama-cpp";
import {InvalidRequestError} from "../errors.js";
import {stopTriggerStrings} from "../decode/stopTriggerStrings.js";
import {IMAGE_PLACEHOLDER} from "../types.js";
import type {PlacedImage} from "../vision/placeImages.js";
import type {ChatMessage, ReasoningOptions, ToolDefinition} from "../types.js";
import {toNativeHistory} from "./nativeHistory.js";
import {HERMES_CALL, toHermesHistory} from "./hermesTools.js";
import {rendersSystemTurnsInPlace, systemTurnsAsReminders} from "./systemTurns.js";

/** What an opening of the reply (a prefix trigger) does: open a segment, start the answer, or start a call. */
export type OpeningAction =
    | {type: "segment", segment: "thought" | "comment", inject?: LlamaText}
    | {type: "response", inject?: LlamaText}
    | {type: "functionCall", inject?: LlamaText, keepTrigger: boolean};

/**
 * How a model marks up its reply, read off node-llama-cpp's chat wrapper for its family. Texts are as the
 * model's tokens detokenize with their special tokens; `LlamaText` values are injected as tokens.
 */
export type ReplySyntax = {
    /** The thinking segment: `<think>\n` … `\n</think>`, `<|channel|>analysis<|message|>` … `<|end|>`. */
    thought?: {prefix: string, suffix: string, openOnStart: boolean, emptyBlock?: LlamaText},
    /** A comment segment (gpt-oss's commentary channel), shown as part of the answer. */
    comment?: {prefix: string, suffix: string},
    closeAllSegments?: string,
    call?: CallSyntax,
    /** The reply must open with one of these (gpt-oss's channels); none matching takes `otherwise`. */
    opening?: {triggers: {text: string, action: OpeningAction}[], otherwise?: OpeningAction},
    /** Texts after which the template is rendered again with the reply so far (gpt-oss's `<|end|>`). */
    rerender: string[]
};

/** A text that starts a call in the reply, and the format's own text that replaces it before the function's name. */
export type CallStart = {text: string, inject: LlamaText};

export type CallSyntax = {
    /** What starts the first call in free text: the call's prefix and its alternates, or the calls' section opening. */
    starts: CallStart[],
    /** What starts another call after one, where one reply may hold several (the separator, then the prefix). */
    next: CallStart[],
    /** Whether a call may start in free text; `false` where only an opening starts one. */
    detectInText: boolean,
    /** What starts a forced call: the section opening (where there is one) and the call's prefix. */
    forced: LlamaText,
    optionalPrefixSpace: boolean,
    paramsPrefix(name: string): LlamaText,
    suffix(name: string): LlamaText
};

/** A rendered chat turn: the prompt's tokens, and how to read and continue the reply. */
export type ChatTurn = {
    tokens: Token[],
    /** Where each image of the chat goes, in order: an index into `tokens` (the images' own tokens are added later). */
    imageMarks: number[],
    stops: string[],
    syntax: ReplySyntax,
    /** The tools the model may call in this turn (none under `tool_choice: "none"`). */
    tools: readonly ToolDefinition[],
    /** The prompt again, with `response` as the reply so far: for formats that re-render mid-reply. */
    rerender(response: ChatModelResponse["response"]): MarkedTokens
};

/**
 * Tokens with the places of the chat's images in them (see ChatTurn); once the images' own tokens are in place,
 * `imageMarks` is empty and `placed` says where each image is.
 */
export type MarkedTokens = {tokens: Token[], imageMarks: number[], placed?: readonly PlacedImage[]};

type ReasoningKey = "default" | "off" | "low" | "medium" | "high";

/**
 * A LlamaText as the model's detokenized text reads; undefined when it holds a builtin special token
 * (BOS, EOS), unless `skipBuiltins`, which leaves those out.
 */
export function textOf(value: string | LlamaText | undefined, skipBuiltins = false): string | undefined {
    if (value == null)
        return undefined;
    const text = LlamaText(value);
    let out = "";
    for (const part of text.values) {
        if (typeof part === "string")
            out += part;
        else if (part instanceof SpecialTokensText)
            out += part.value;
        else if (part instanceof SpecialToken && !skipBuiltins)
            return undefined;
    }
    return out;
}

function withFunctionName(value: string | LlamaText, name: string): LlamaText {
    return LlamaText(LlamaText(value).values.map((part) => typeof part === "string" ? part.replaceAll("{{functionName}}", name) : part));
}

/**
 * Renders chats for one model the way its own family does, through node-llama-cpp's chat wrapper for it:
 * tools in the template's own format, past calls and results, and the template's reasoning switch.
 * A model whose template has no tool support gets Hearth's Hermes-style format (`hermesTools.ts`). A system
 * message later in the chat is a system turn where the wrapper renders one there, else the user's text.
 */
export class ChatFormat {
    readonly #model: LlamaModel;
    readonly #type: ResolvableChatWrapperTypeName | undefined;
    readonly #wrappers = new Map<ReasoningKey, ChatWrapper>();
    readonly #systemTurnsInPlace = new Map<ChatWrapper, boolean>();

    constructor(model: LlamaModel, type?: ResolvableChatWrapperTypeName) {
        this.#model = model;
        this.#type = type;
    }

    #wrapperFor(reasoning: ReasoningOptions | undefined): ChatWrapper {
        const key: ReasoningKey = reasoning == null ? "default" : !reasoning.enabled ? "off" : reasoning.effort ?? "default";
        let wrapper = this.#wrappers.get(key);
        if (wrapper == null) {
            const off = key === "off";
            const effort = key === "low" || key === "medium" || key === "high" ? key : off ? "low" : undefined;
            wrapper = resolveChatWrapper(this.#model, {
                ...(this.#type != null ? {type: this.#type} : {}),
                customWrapperSettings: key === "default" ? {} : {
                    qwen: {thoughts: off ? "discourage" : "auto"},
                    harmony: effort != null ? {reasoningEffort: effort} : {},
                    gemma4: {reasoning: !off},
                    seed: off ? {thinkingBudget: 0} : {},
                    jinjaTemplate: {reasoning: !off}
                }
            });
            this.#wrappers.set(key, wrapper);
        }
        return wrapper;
    }

    #inPlace(wrapper: ChatWrapper): boolean {
        let inPlace = this.#systemTurnsInPlace.get(wrapper);
        if (inPlace == null) {
            inPlace = rendersSystemTurnsInPlace(wrapper);
            this.#systemTurnsInPlace.set(wrapper, inPlace);
        }
        return inPlace;
    }

    render(chat: readonly ChatMessage[], options: {tools?: readonly ToolDefinition[], reasoning?: ReasoningOptions}): ChatTurn {
        const wrapper = this.#wrapperFor(options.reasoning);
        const messages = this.#inPlace(wrapper) ? chat : systemTurnsAsReminders(chat);
        const tools = options.tools ?? [];
        const native = wrapper.settings.functions.call.prefix !== "||call: ";
        const functions: ChatModelFunctions | undefined = tools.length > 0 && native
            ? Object.fromEntries(tools.map((tool) => [tool.name, {description: tool.description, params: (tool.parameters ?? {type: "object", properties: {}}) as never}]))
            : undefined;
        const history: ChatHistoryItem[] = native ? toNativeHistory(messages) : toHermesHistory(messages, tools);
        const render = (chatHistory: readonly ChatHistoryItem[]) =>
            wrapper.generateContextState({chatHistory, availableFunctions: functions, documentFunctionParams: true});
        const state = render(history);
        const syntax = replySyntax(wrapper, state, native, tools.length > 0);

        let contextText = state.contextText;
        // Thinking off, where the wrapper leaves the reply open: start it with an empty, closed thought, as the templates
        // do; not where the model opens its own channels (gpt-oss, which cannot stop thinking, thinks at its lowest level).
        if (options.reasoning?.enabled === false && syntax.thought?.emptyBlock != null && !syntax.thought.openOnStart && syntax.opening == null &&
            !textOf(contextText, true)!.trimEnd().endsWith(syntax.thought.suffix.trim()))
            contextText = LlamaText([contextText, syntax.thought.emptyBlock]);
        const images = chat.reduce((count, message) => count + ("images" in message ? message.images?.length ?? 0 : 0), 0);
        const tokenize = (text: LlamaText): MarkedTokens => {
            if (images === 0)
                return {tokens: text.tokenize(this.#model.tokenizer), imageMarks: []};
            const marked = tokenizeAroundPlaceholders(text, this.#model);
            if (marked.imageMarks.length !== images)
                throw new InvalidRequestError(`The chat has ${images} images, but the model's chat template placed ${marked.imageMarks.length} of them`, "messages");
            return marked;
        };
        const last = history.at(-1);
        const prompt = tokenize(contextText);
        return {
            tokens: prompt.tokens,
            imageMarks: prompt.imageMarks,
            stops: stopTriggerStrings(state.stopGenerationTriggers),
            syntax,
            tools,
            rerender: (response) => {
                const open = last?.type === "model" ? last.response : [];
                return tokenize(render([...history.slice(0, -1), {type: "model", response: [...open, ...response]}]).contextText);
            }
        };
    }
}

/**
 * Tokenizes a rendered chat whose images are IMAGE_PLACEHOLDERs, piece by piece between them (as libmtmd tokenizes
 * the text around media markers), recording where each image goes.
 */
function tokenizeAroundPlaceholders(text: LlamaText, model: LlamaModel): MarkedTokens {
    const pieces: LlamaText["values"][number][][] = [[]];
    for (const value of text.values) {
        if (typeof value !== "string") {
            pieces.at(-1)!.push(value);
            continue;
        }
        value.split(IMAGE_PLACEHOLDER).forEach((part, index) => {
            if (index > 0)
                pieces.push([]);
            if (part !== "")
                pieces.at(-1)!.push(part);
        });
    }
    const tokens: Token[] = [];
    const imageMarks: number[] = [];
    pieces.forEach((piece, index) => {
        if (index > 0)
            imageMarks.push(tokens.length);
        tokens.push(...LlamaText(piece).tokenize(model.tokenizer));
    });
    return {tokens, imageMarks};
}

function segmentTexts(prefix: string | LlamaText | undefined, suffix: string | LlamaText | undefined): {prefix: string, suffix: string} | undefined {
    const prefixText = textOf(prefix);
    const suffixText = textOf(suffix);
    return prefixText != null && prefixText !== "" && suffixText != null && suffixText !== "" ? {prefix: prefixText, suffix: suffixText} : undefined;
}

function openingAction(trigger: NonNullable<ChatWrapperGeneratedContextState["prefixTriggers"]>[number] | ChatWrapperGeneratedContextState["noPrefixTrigger"]): OpeningAction | undefined {
    if (trigger == null)
        return undefined;
    const inject = trigger.inject != null ? LlamaText(trigger.inject) : undefined;
    switch (trigger.type) {
        case "segment":
            return {type: "segment", segment: trigger.segmentType, inject};
        case "response":
            return {type: "response", inject};
        case "functionCall":
            return {type: "functionCall", inject, keepTrigger: "replaceTrigger" in trigger && trigger.replaceTrigger === false};
    }
}

function replySyntax(wrapper: ChatWrapper, state: ChatWrapperGeneratedContextState, native: boolean, toolsOffered: boolean): ReplySyntax {
    const settings = wrapper.settings;
    const segments = settings.segments;
    const thoughtSetting = segments?.thought;
    let thought: ReplySyntax["thought"];
    if (thoughtSetting != null) {
        const openedOnStart = typeof thoughtSetting.prefix === "object" && !(thoughtSetting.prefix instanceof LlamaText) && thoughtSetting.prefix.type === "openedOnStart";
        const suffix = textOf(thoughtSetting.suffix);
        const prefix = openedOnStart ? "" : textOf(thoughtSetting.prefix as string | LlamaText);
        if (suffix != null && suffix !== "" && prefix != null)
            thought = {
                prefix, suffix,
                openOnStart: openedOnStart || thoughtSetting.openOnResponseStart === true,
                emptyBlock: prefix !== "" ? LlamaText([LlamaText(thoughtSetting.prefix as string | LlamaText), LlamaText(thoughtSetting.suffix!)]) : undefined
            };
    }

    const call = native ? settings.functions.call : HERMES_CALL;
    const texts = (values: readonly (string | LlamaText)[]) =>
        values.map((value) => textOf(value)).filter((text): text is string => text != null && text !== "");
    const prefix = LlamaText(call.prefix);
    const prefixes = native ? texts([call.prefix, ...(call.prefixAlternateMatches ?? [])]) : ["<tool_call>"];
    const parallelism = native ? settings.functions.parallelism?.call : undefined;
    const section = parallelism != null ? LlamaText(parallelism.sectionPrefix) : undefined;
    const sectionTexts = parallelism != null ? texts([parallelism.sectionPrefix, ...(parallelism.sectionPrefixAlternateMatches ?? [])]) : [];
    const opening = section != null ? LlamaText([section, prefix]) : prefix;
    const between = parallelism != null ? LlamaText(parallelism.betweenCalls ?? "") : undefined;
    const betweenText = between != null ? textOf(between) ?? "" : "";
    const stateDetects = "detectFunctionCalls" in state ? state.detectFunctionCalls : undefined;
    const callSyntax: CallSyntax | undefined = toolsOffered ? {
        // The section's opening comes first, so a call that opens it is found before its own prefix.
        starts: [...sectionTexts.map((text) => ({text, inject: opening})), ...prefixes.map((text) => ({text, inject: opening}))],
        next: parallelism == null ? [] : [
            ...(betweenText !== "" ? prefixes.map((text) => ({text: betweenText + text, inject: LlamaText([between!, prefix])})) : []),
            ...prefixes.map((text) => ({text, inject: LlamaText([between!, prefix])}))
        ],
        detectInText: stateDetects !== false,
        forced: opening,
        optionalPrefixSpace: call.optionalPrefixSpace,
        paramsPrefix: (name) => withFunctionName(call.paramsPrefix, name),
        suffix: (name) => withFunctionName(call.suffix, name)
    } : undefined;

    const prefixTriggers = "prefixTriggers" in state ? state.prefixTriggers : undefined;
    const triggers = (prefixTriggers ?? []).flatMap((trigger) => {
        const action = openingAction(trigger);
        if (action == null || (action.type === "functionCall" && callSyntax == null))
            return [];
        return trigger.triggers.map((text) => ({text: textOf(text), action})).filter((entry): entry is {text: string, action: OpeningAction} => entry.text != null && entry.text !== "");
    });
    const noPrefix = "noPrefixTrigger" in state ? openingAction(state.noPrefixTrigger) : undefined;
    const rerender = "rerender" in state && state.rerender != null
        ? state.rerender.triggers.map((text) => textOf(text)).filter((text): text is string => text != null && text !== "")
        : [];

    return {
        thought,
        comment: segmentTexts(segments?.comment?.prefix, segments?.comment?.suffix),
        closeAllSegments: textOf(segments?.closeAllSegments) || undefined,
        call: callSyntax,
        opening: triggers.length > 0 || noPrefix != null ? {triggers, otherwise: noPrefix?.type === "functionCall" && callSyntax == null ? undefined : noPrefix} : undefined,
        rerender
    };
}
