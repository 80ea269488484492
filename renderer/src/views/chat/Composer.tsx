import {useRef, useState} from "react";
import type {ClipboardEvent, DragEvent} from "react";
import {Thumbnail} from "./MessageImages.js";

/** The image types the server takes, as the file picker and a drop or paste accept them. */
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"];

type Attachment = {id: number, name: string, dataUri: string};

function readAsDataUri(file: File): Promise<string> {
    return new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result as string);
        reader.onerror = () => reject(reader.error ?? new Error(`${file.name} could not be read`));
        reader.readAsDataURL(file);
    });
}

/**
 * The message box: Enter sends, Shift+Enter starts a new line; Stop while a reply streams. A model that can see
 * (`vision`) takes images from the button, a paste or a drop, shown as thumbnails until sent; one that cannot says so.
 */
export function Composer({model, vision, streaming, disabled, onSend, onStop}: {
    model: string,
    vision: boolean,
    streaming: boolean,
    disabled: boolean,
    /** Resolves false when the message could not be stored: what was sent comes back into the box. */
    onSend: (text: string, images: string[]) => Promise<boolean>,
    onStop: () => void
}) {
    const [text, setText] = useState("");
    const [attachments, setAttachments] = useState<Attachment[]>([]);
    const [note, setNote] = useState<string | undefined>();
    const [dragging, setDragging] = useState(false);
    const picker = useRef<HTMLInputElement>(null);
    const nextId = useRef(0);
    const cannotSee = `${model} cannot see images`;
    // Images kept from before the model changed to one that cannot see wait, unsent, until they are removed or it can.
    const blocked = attachments.length > 0 && !vision;
    const canSend = !streaming && !disabled && !blocked && (text.trim() !== "" || attachments.length > 0);

    const send = () => {
        if (!canSend)
            return;
        const sent = {text, attachments};
        setText("");
        setAttachments([]);
        setNote(undefined);
        void onSend(text, attachments.map((attachment) => attachment.dataUri)).then((stored) => {
            if (stored)
                return;
            setText((current) => current === "" ? sent.text : current);
            setAttachments((current) => [...sent.attachments, ...current]);
        });
    };

    const attach = async (files: readonly File[]) => {
        if (files.length === 0)
            return;
        if (!vision) {
            setNote(cannotSee);
            return;
        }
        const images = files.filter((file) => IMAGE_TYPES.includes(file.type));
        setNote(images.length < files.length ? "Only images can be attached: PNG, JPEG, WebP, GIF or BMP" : undefined);
        try {
            const read = await Promise.all(images.map(async (file) => ({id: nextId.current++, name: file.name, dataUri: await readAsDataUri(file)})));
            setAttachments((current) => [...current, ...read]);
        } catch (caught) {
            setNote((caught as Error).message);
        }
    };

    const onDrop = (event: DragEvent) => {
        event.preventDefault();
        setDragging(false);
        void attach([...event.dataTransfer.files]);
    };
    const onPaste = (event: ClipboardEvent) => {
        const files = [...event.clipboardData.files];
        if (files.length === 0)
            return;
        // A pasted image would otherwise arrive as its file name.
        event.preventDefault();
        void attach(files);
    };

    return (
        <form className={`composer ${dragging ? "composer-dragging" : ""}`} aria-label="Composer"
            onSubmit={(event) => {
                event.preventDefault();
                send();
            }}
            onDragOver={(event) => {
                if (!event.dataTransfer.types.includes("Files"))
                    return;
                event.preventDefault();
                event.dataTransfer.dropEffect = vision ? "copy" : "none";
                setDragging(true);
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={onDrop}>
            {(attachments.length > 0 || note != null || blocked) && (
                <div className="composer-attachments">
                    {attachments.length > 0 && (
                        <div className="thumbnails" role="list" aria-label="Images to send">
                            {attachments.map((attachment, index) => (
                                <Thumbnail key={attachment.id} source={attachment.dataUri} label={`Image ${index + 1}`}>
                                    <button type="button" className="thumbnail-remove" aria-label={`Remove image ${index + 1} (${attachment.name})`}
                                        onClick={() => setAttachments((current) => current.filter((kept) => kept.id !== attachment.id))}>×</button>
                                </Thumbnail>
                            ))}
                        </div>
                    )}
                    {(note != null || blocked) && <p className="composer-note" role="status">{blocked ? cannotSee : note}</p>}
                </div>
            )}
            <div className="composer-row">
                <input ref={picker} type="file" accept={IMAGE_TYPES.join(",")} multiple hidden aria-label="Image files"
                    onChange={(event) => {
                        void attach([...event.target.files ?? []]);
                        event.target.value = "";
                    }}/>
                <button type="button" className="secondary attach" aria-label="Attach images" title={vision ? "Attach images" : cannotSee}
                    disabled={!vision || streaming || disabled} onClick={() => picker.current?.click()}>+</button>
                <textarea aria-label="Message" placeholder={disabled ? "Choose a model first" : "Message (Enter sends, Shift+Enter for a new line)"}
                    value={text} rows={Math.min(8, text.split("\n").length)} onChange={(event) => setText(event.target.value)} onPaste={onPaste}
                    onKeyDown={(event) => {
                        if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
                            event.preventDefault();
                            send();
                        }
                    }}/>
                {streaming
                    ? <button type="button" className="danger" onClick={onStop}>Stop</button>
                    : <button type="submit" disabled={!canSend}>Send</button>}
            </div>
        </form>
    );
}
