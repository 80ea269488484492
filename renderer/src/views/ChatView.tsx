import {useCallback, useEffect, useRef, useState} from "react";
import {ApiError, get, request, streamNdjson} from "../api.js";
import type {Conversation, ConversationSummary, ConversationWithMessages, Message, ReplyLine} from "../api.js";
import {formatTime} from "../format.js";
import {Composer} from "./chat/Composer.js";
import {MessageView} from "./chat/MessageView.js";
import {SettingsPanel} from "./chat/SettingsPanel.js";

const LAST_MODEL_KEY = "hearth.lastModel";

/** A model as `/v1/models` lists it; `capabilities` has "vision" for one that can see images. */
type ListedModel = {id: string, capabilities?: string[]};

function conversationIdInHash(): string | undefined {
    const [view, id] = location.hash.replace(/^#\/?/, "").split("/");
    return view === "chat" && id ? decodeURIComponent(id) : undefined;
}

function showConversation(id: string | undefined): void {
    const hash = id != null ? `#/chat/${encodeURIComponent(id)}` : "#/chat";
    if (location.hash !== hash)
        history.replaceState(null, "", hash);
}

/**
 * Conversations kept by the server: the list, the open one, a model picker, and replies streamed from
 * `/api/conversations/:id/reply`. Everything shown comes back from the server after a reload.
 */
export function ChatView() {
    const [conversations, setConversations] = useState<ConversationSummary[]>([]);
    const [conversation, setConversation] = useState<ConversationWithMessages | undefined>();
    const [listed, setListed] = useState<ListedModel[] | undefined>();
    const [pickedModel, setPickedModel] = useState<string>(() => localStorage.getItem(LAST_MODEL_KEY) ?? "");
    const [streaming, setStreaming] = useState(false);
    const [error, setError] = useState<string | undefined>();
    const [settingsOpen, setSettingsOpen] = useState(false);
    const controller = useRef<AbortController | undefined>(undefined);
    const bottom = useRef<HTMLDivElement>(null);

    const refreshList = useCallback(async () => {
        setConversations((await get<{conversations: ConversationSummary[]}>("/api/conversations")).conversations);
    }, []);

    /** Shows a conversation as stored (none: a new chat); returns it, or undefined when it could not be read. */
    const open = useCallback(async (id: string | undefined): Promise<ConversationWithMessages | undefined> => {
        setError(undefined);
        setSettingsOpen(false);
        if (id == null) {
            setConversation(undefined);
            showConversation(undefined);
            return undefined;
        }
        try {
            const loaded = await get<ConversationWithMessages>(`/api/conversations/${encodeURIComponent(id)}`);
            setConversation(loaded);
            showConversation(loaded.id);
            return loaded;
        } catch (caught) {
            // Only a conversation that is gone is closed; while the server is unreachable it stays open.
            if (caught instanceof ApiError && caught.status === 404) {
                setConversation(undefined);
                showConversation(undefined);
            }
            setError((caught as Error).message);
            return undefined;
        }
    }, []);

    useEffect(() => {
        void refreshList().catch((caught: Error) => setError(caught.message));
        void open(conversationIdInHash());
        void get<{data: ListedModel[]}>("/v1/models").then((list) => setListed(list.data), () => setListed([]));
        return () => controller.current?.abort();
    }, [open, refreshList]);

    useEffect(() => {
        bottom.current?.scrollIntoView({block: "end"});
    }, [conversation?.messages.length, conversation?.messages.at(-1)?.content, conversation?.messages.at(-1)?.reasoning, conversation?.messages.at(-1)?.tool_calls]);

    const models = listed?.map((entry) => entry.id);
    const model = conversation?.model ?? (models?.includes(pickedModel) ? pickedModel : models?.[0]) ?? "";
    const vision = listed?.find((entry) => entry.id === model)?.capabilities?.includes("vision") ?? false;

    const pickModel = async (name: string) => {
        setPickedModel(name);
        localStorage.setItem(LAST_MODEL_KEY, name);
        if (conversation != null)
            setConversation({...conversation, ...await request<Conversation>("PATCH", `/api/conversations/${conversation.id}`, {model: name})});
    };

    const ensureConversation = async (): Promise<ConversationWithMessages> => {
        if (conversation != null)
            return conversation;
        const created = await request<Conversation>("POST", "/api/conversations", {model});
        const withMessages = {...created, messages: []};
        setConversation(withMessages);
        showConversation(created.id);
        return withMessages;
    };

    /** Streams the server's reply into the open conversation, then reads back what the server stored. */
    const reply = async (id: string, body: {model: string, regenerate?: boolean}) => {
        const abort = new AbortController();
        controller.current = abort;
        setStreaming(true);
        const update = (change: (messages: Message[]) => Message[]) =>
            setConversation((current) => current != null && current.id === id ? {...current, messages: change(current.messages)} : current);
        const updateReply = (change: (reply: Message) => Message) =>
            update((messages) => messages.map((message, index) => index === messages.length - 1 ? change(message) : message));
        try {
            await streamNdjson<ReplyLine>(`/api/conversations/${id}/reply`, body, (line) => {
                switch (line.type) {
                    case "message":
                        update((messages) => [...messages, line.message]);
                        break;
                    case "text":
                        updateReply((message) => ({...message, content: message.content + line.text}));
                        break;
                    case "reasoning":
                        updateReply((message) => ({...message, reasoning: message.reasoning + line.text}));
                        break;
                    case "tool_call":
                        updateReply((message) => ({...message, tool_calls: [...message.tool_calls, {id: line.id, name: line.name, arguments: ""}]}));
                        break;
                    case "tool_call_arguments":
                        updateReply((message) => ({
                            ...message,
                            tool_calls: message.tool_calls.map((call, index) => index === line.index ? {...call, arguments: call.arguments + line.text} : call)
                        }));
                        break;
                    case "done":
                        update((messages) => [...messages.slice(0, -1), line.message]);
                        break;
                    case "error":
                        if (line.message != null)
                            update((messages) => [...messages.slice(0, -1), line.message!]);
                        else
                            setError(line.error);
                        break;
                }
            }, abort.signal);
        } catch (caught) {
            if (!abort.signal.aborted)
                setError((caught as Error).message);
        } finally {
            controller.current = undefined;
            // The stored conversation is the truth: a stopped reply's status, the title from the first message.
            // After Stop, the server marks the reply stopped once it sees the connection close, a moment later.
            for (let attempt = 1; ; attempt++) {
                const stored = await open(id);
                if (stored?.messages.at(-1)?.status !== "streaming" || !abort.signal.aborted || attempt >= 20)
                    break;
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            setStreaming(false);
            await refreshList().catch(() => undefined);
        }
    };

    /** Stores the user's message and streams the reply; false when the message could not be stored. */
    const send = async (text: string, images: string[]): Promise<boolean> => {
        setError(undefined);
        let current: ConversationWithMessages;
        let message: Message;
        try {
            current = await ensureConversation();
            message = await request<Message>("POST", `/api/conversations/${current.id}/messages`,
                {role: "user", content: text, ...images.length > 0 ? {images} : {}});
        } catch (caught) {
            setError((caught as Error).message);
            return false;
        }
        setConversation((shown) => shown != null && shown.id === current.id ? {...shown, messages: [...shown.messages, message]} : shown);
        void reply(current.id, {model});
        return true;
    };

    const edit = async (message: Message, content: string) => {
        if (conversation == null)
            return;
        setError(undefined);
        try {
            await request("PATCH", `/api/conversations/${conversation.id}/messages/${message.id}`, {content});
            await open(conversation.id);
            await reply(conversation.id, {model});
        } catch (caught) {
            setError((caught as Error).message);
        }
    };

    const regenerate = async () => {
        if (conversation == null)
            return;
        setError(undefined);
        setConversation({...conversation, messages: conversation.messages.slice(0, -1)});
        await reply(conversation.id, {model, regenerate: true});
    };

    const remove = async (id: string) => {
        if (!confirm("Delete this conversation?"))
            return;
        await request("DELETE", `/api/conversations/${id}`).catch((caught: Error) => setError(caught.message));
        if (conversation?.id === id)
            await open(undefined);
        await refreshList();
    };

    const saveSettings = async (settings: {system_prompt: string | null, options: Conversation["options"]}) => {
        try {
            const current = await ensureConversation();
            const saved = await request<Conversation>("PATCH", `/api/conversations/${current.id}`, settings);
            setConversation((shown) => shown != null && shown.id === saved.id ? {...shown, ...saved} : shown);
            setSettingsOpen(false);
            await refreshList();
        } catch (caught) {
            setError((caught as Error).message);
        }
    };

    const messages = conversation?.messages ?? [];
    const lastIndex = messages.length - 1;
    return (
        <div className="chat">
            <aside className="sidebar" aria-label="Conversations">
                <button type="button" onClick={() => void open(undefined)} disabled={streaming}>New chat</button>
                <ul className="conversation-list">
                    {conversations.map((item) => (
                        <li key={item.id} className={item.id === conversation?.id ? "selected" : ""}>
                            <button type="button" className="conversation" disabled={streaming} onClick={() => void open(item.id)} aria-current={item.id === conversation?.id ? "true" : undefined}>
                                <span className="conversation-title">{item.title}</span>
                                <span className="muted">{formatTime(item.updated_at)}</span>
                            </button>
                            <button type="button" className="link delete" aria-label={`Delete ${item.title}`} disabled={streaming} onClick={() => void remove(item.id)}>×</button>
                        </li>
                    ))}
                </ul>
            </aside>
            <section className="conversation-pane">
                <div className="chat-head">
                    <label className="model-picker">Model
                        <select aria-label="Model" value={model} disabled={streaming || models == null || models.length === 0} onChange={(event) => void pickModel(event.target.value)}>
                            {models?.length === 0 && <option value="">No models yet</option>}
                            {conversation?.model != null && models != null && !models.includes(conversation.model) && <option value={conversation.model}>{conversation.model} (not in the library)</option>}
                            {models?.map((name) => <option key={name} value={name}>{name}</option>)}
                        </select>
                    </label>
                    <button type="button" className="secondary" onClick={() => setSettingsOpen(!settingsOpen)} aria-expanded={settingsOpen}>Settings</button>
                </div>
                {settingsOpen && (
                    <SettingsPanel key={conversation?.id ?? "new"} settings={{system_prompt: conversation?.system_prompt ?? null, options: conversation?.options ?? {}}}
                        onSave={(settings) => void saveSettings(settings)} onClose={() => setSettingsOpen(false)}/>
                )}
                <div className="messages" aria-live="polite">
                    {messages.length === 0 && (
                        models?.length === 0
                            ? <div className="empty"><p><strong>No models yet.</strong></p><p><a href="#/models">Find a model</a> that fits this machine and download it.</p></div>
                            : <div className="empty"><p>Start a conversation with {model || "a model"}. It is saved on this machine as you go.</p></div>
                    )}
                    {messages.map((message, index) => (
                        <MessageView key={message.id} message={message} conversationId={conversation!.id}
                            streaming={streaming && index === lastIndex && message.role === "assistant"}
                            canEdit={!streaming}
                            canRegenerate={!streaming && index === lastIndex && message.role === "assistant"}
                            onEdit={(content) => void edit(message, content)}
                            onRegenerate={() => void regenerate()}/>
                    ))}
                    <div ref={bottom}/>
                </div>
                {error != null && <p className="error" role="alert">{error}</p>}
                <Composer model={model} vision={vision} streaming={streaming} disabled={model === ""}
                    onSend={send} onStop={() => controller.current?.abort()}/>
            </section>
        </div>
    );
}
