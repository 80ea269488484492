import type OpenAI from "openai";
import type {ResponseStreamEvent} from "openai/resources/responses/responses";

/** Every event of a streamed Responses API reply, in order. */
export async function streamEvents(client: OpenAI, body: Parameters<OpenAI["responses"]["create"]>[0]): Promise<ResponseStreamEvent[]> {
    const stream = await client.responses.create({...body, stream: true});
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream)
        events.push(event);
    return events;
}
