import type {ChatMessage} from "../../native/types.js";

/** Whether any message shows the model an image: the request then needs a model that can see. */
export function hasImages(messages: readonly ChatMessage[]): boolean {
    return messages.some((message) => "images" in message && message.images != null && message.images.length > 0);
}
