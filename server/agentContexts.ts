/**
 * The context a slot needs for each coding agent people point at Hearth: its first prompt (system prompt and tools)
 * plus room for its replies. Claude Code's first request is 19,000–27,000 tokens and asks for 32,000 output tokens,
 * Qwen Code's about 15,000, Codex's 7,500–9,100 with its sub-agent tools. The server's first-overflow warning and the app's Server view both
 * read this table.
 */
export type AgentContext = {agent: string, tokensPerSlot: number, ctxSize: number};

export const AGENT_CONTEXTS: readonly AgentContext[] = [
    {agent: "Claude Code", tokensPerSlot: 32_000, ctxSize: 32_768},
    {agent: "Qwen Code", tokensPerSlot: 16_000, ctxSize: 16_384},
    {agent: "Codex", tokensPerSlot: 12_000, ctxSize: 12_288}
];

/** "Claude Code about 32,000 tokens per slot, Qwen Code 16,000, Codex 12,000". */
export function agentContextsText(): string {
    return AGENT_CONTEXTS.map((entry, index) => `${entry.agent} ${index === 0 ? "about " : ""}${entry.tokensPerSlot.toLocaleString("en-US")}${index === 0 ? " tokens per slot" : ""}`).join(", ");
}
