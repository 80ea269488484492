/** A snippet the Server view shows: a title, the text to copy, and its copy button's label. */
export type AgentSnippet = {title: string, code: string, label: string};

/**
 * How to point coding agents at this server: Codex CLI and the OpenAI Agents SDK speak the Responses API under
 * `/v1` (`OPENAI_BASE_URL`), Claude Code and the Anthropic SDK the Messages API at the server's root
 * (`ANTHROPIC_BASE_URL`, which the SDK extends with `/v1/messages`).
 */
export function agentSnippets(baseUrl: string, model: string, key: string): AgentSnippet[] {
    const root = baseUrl.replace(/\/v1\/?$/, "");
    return [
        {
            title: "Codex CLI",
            label: "Copy Codex CLI",
            code: `# ~/.codex/config.toml\nmodel = "${model}"\nmodel_provider = "hearth"\n\n[model_providers.hearth]\nname = "Hearth"\nbase_url = "${baseUrl}"\nwire_api = "responses"\nenv_key = "HEARTH_API_KEY"\n\n# then, in a shell:\nexport HEARTH_API_KEY="${key}"\ncodex`
        },
        {
            title: "OpenAI Agents SDK (Python)",
            label: "Copy Agents SDK",
            code: `# export OPENAI_BASE_URL="${baseUrl}" OPENAI_API_KEY="${key}"\nfrom agents import Agent, Runner, set_tracing_disabled\n\nset_tracing_disabled(True)  # traces would go to OpenAI\nagent = Agent(name="Assistant", model="${model}", instructions="Be brief.")\nprint(Runner.run_sync(agent, "Hello").final_output)`
        },
        {
            title: "Claude Code / Anthropic SDK",
            label: "Copy Claude Code",
            code: `export ANTHROPIC_BASE_URL="${root}"\nexport ANTHROPIC_AUTH_TOKEN="${key}"\nclaude --model ${model}`
        }
    ];
}
