import {LlamaText, SpecialTokensText} from "node-llama-cpp";
import type {Token} from "node-llama-cpp";

type Trigger = string | LlamaText | readonly (string | Token)[];

/**
 * The stop triggers of a chat template or grammar that are text, as plain strings for stop-string
 * matching. Triggers made of special tokens (EOS, EOT) are left out: the engine already ends
 * generation on end-of-generation tokens.
 */
export function stopTriggerStrings(triggers: readonly Trigger[]): string[] {
    const strings: string[] = [];
    for (const trigger of triggers) {
        if (typeof trigger === "string")
            strings.push(trigger);
        else if (trigger instanceof LlamaText) {
            if (trigger.values.every((value) => typeof value === "string" || value instanceof SpecialTokensText))
                strings.push(trigger.values.map((value) => typeof value === "string" ? value : value.value).join(""));
        } else if (trigger.every((value) => typeof value === "string"))
            strings.push(trigger.join(""));
    }
    return strings.filter((text) => text.length > 0);
}
