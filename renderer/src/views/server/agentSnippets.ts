import {AGENT_CONTEXTS} from "../../../../server/agentContexts.js";

/** A snippet the Server view shows: a title, the text to copy, its copy button's label, and the context its agent needs. */
export type AgentSnippet = {title: string, code: string, label: string, contextTokens?: number, ctxSize?: number};

function contextOf(agent: string): {contextTokens?: number, ctxSize?: number} {
    const entry = AGENT_CONTEXTS.find((candidate) => candidate.agent === agent);
    return entry != null ? {contextTokens: entry.tokensPerSlot, ctxSize: entry.ctxSize} : {};
}

/**
 * How to point coding agents at this server: Codex CLI and the OpenAI Agents SDK speak the Responses API under
 * `/v1` (`OPENAI_BASE_URL`), Qwen Code chat completions under `/v1`, Claude Code and the Anthropic SDK the Messages
 * API at the server's root (`ANTHROPIC_BASE_URL`, which the SDK extends with `/v1/messages`). Claude Code asks for a
 * small model of its own for background work; naming the same model keeps every request on this server's.
 */
export function agentSnippets(baseUrl: string, model: string, key: string): AgentSnippet[] {
    const root = baseUrl.replace(/\/v1\/?$/, "");
    return [
        {
            title: "Codex CLI",
            label: "Copy Codex CLI",
            code: `# ~/.codex/config.toml\nmodel = "${model}"\nmodel_provider = "hearth"\n\n[model_providers.hearth]\nname = "Hearth"\nbase_url = "${baseUrl}"\nwire_api = "responses"\nenv_key = "HEARTH_API_KEY"\n\n# then, in a shell:\nexport HEARTH_API_KEY="${key}"\ncodex`,
            ...contextOf("Codex")
        },
        {
            title: "Claude Code / Anthropic SDK",
            label: "Copy Claude Code",
            code: `export ANTHROPIC_BASE_URL="${root}"\nexport ANTHROPIC_AUTH_TOKEN="${key}"\nexport ANTHROPIC_MODEL="${model}" ANTHROPIC_DEFAULT_HAIKU_MODEL="${model}"\nclaude`,
            ...contextOf("Claude Code")
        },
        {
            title: "Qwen Code",
            label: "Copy Qwen Code",
            code: `export OPENAI_BASE_URL="${baseUrl}"\nexport OPENAI_API_KEY="${key}"\nexport OPENAI_MODEL="${model}"\nqwen`,
            ...contextOf("Qwen Code")
        },
        {
            title: "OpenAI Agents SDK (Python)",
            label: "Copy Agents SDK",
            code: `# export OPENAI_BASE_URL="${baseUrl}" OPENAI_API_KEY="${key}"\nfrom agents import Agent, Runner, set_tracing_disabled\n\nset_tracing_disabled(True)  # traces would go to OpenAI\nagent = Agent(name="Assistant", model="${model}", instructions="Be brief.")\nprint(Runner.run_sync(agent, "Hello").final_output)`
        }
    ];
}
