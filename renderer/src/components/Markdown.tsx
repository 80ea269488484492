import {memo} from "react";
import ReactMarkdown from "react-markdown";
import rehypeHighlight from "rehype-highlight";

const rehypePlugins = [[rehypeHighlight, {detect: true, ignoreMissing: true}]] as const;

/** A model's reply as Markdown with highlighted code. Raw HTML in it is never rendered, so a reply cannot run script in the app. */
export const Markdown = memo(function Markdown({text}: {text: string}) {
    return (
        <div className="markdown">
            <ReactMarkdown rehypePlugins={rehypePlugins as never}>{text}</ReactMarkdown>
        </div>
    );
});
