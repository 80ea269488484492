import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {SlotScheduler} from "../native/decode/SlotScheduler.js";
import {MarkerScanner} from "../native/chat/MarkerScanner.js";
import {ReplyText} from "../native/chat/ReplyText.js";
import {KvSequence} from "../native/decode/SlotDecoder.js";
import type {Token} from "node-llama-cpp";

describe("MarkerScanner", () => {
    it("finds the earliest marker, holds back a possible one and never emits special tokens", () => {
        const scanner = new MarkerScanner();
        scanner.push("<think>", true);
        scanner.push("\nLet me", false);
        assert.deepEqual(scanner.next(["<think>\n"]), {text: "", found: {marker: "<think>\n", start: 0, end: 8}});
        assert.deepEqual(scanner.next(["\n</think>"]), {text: "Let me"});
        scanner.push(" think.\n", false);
        assert.deepEqual(scanner.next(["\n</think>"]), {text: " think."});
        scanner.push("</think>", true);
        scanner.push("<|x|>Hi", true);
        assert.deepEqual(scanner.next(["\n</think>"]), {text: "", found: {marker: "\n</think>", start: 21, end: 30}});
        assert.deepEqual(scanner.next(["END"], true), {text: ""});
    });
});

describe("ReplyText", () => {
    it("trims the whitespace around thinking and before the answer that follows it", () => {
        const reply = new ReplyText(false);
        const thinking = [...reply.reasoning("\n Let"), ...reply.reasoning(" me\n"), ...reply.reasoning(" think.\n")];
        assert.deepEqual(reply.endItem(), {reasoning: "Let me\n think.", content: ""});
        const answer = [...reply.content("\n\n", undefined), ...reply.content("Hello.", undefined)];
        assert.deepEqual([...thinking, ...answer], [
            {type: "reasoning", text: "Let"}, {type: "reasoning", text: " me"}, {type: "reasoning", text: "\n think."}, {type: "text", text: "Hello."}
        ]);
    });
});

describe("SlotScheduler", () => {
    let nextId = 0;
    const fakeSequence = (tokens: number[]) => {
        const sequence = new KvSequence(nextId++);
        sequence.contextTokens.push(...tokens as Token[]);
        return sequence;
    };

    it("prefers a slot whose cache holds the prompt, else the least recently used one", async () => {
        const scheduler = new SlotScheduler([fakeSequence([1, 5, 6, 7, 8]), fakeSequence([]), fakeSequence([1, 9, 9, 9])], 4);
        const a = await scheduler.acquire([1, 9, 9, 9, 4] as never);
        assert.equal(a.slot.index, 2);
        assert.equal(a.cachedPrefixTokens, 4);
        // Only the BOS token is shared: not worth evicting slot 0's cache for, so the empty slot is used.
        const b = await scheduler.acquire([1, 2, 3, 4, 5, 6] as never);
        assert.equal(b.slot.index, 1);
        a.release();
        b.release();
    });

    it("queues in order, refuses past the bound and hands slots over on release", async () => {
        const scheduler = new SlotScheduler([fakeSequence([])], 1);
        const first = await scheduler.acquire([1] as never);
        const second = scheduler.acquire([1] as never);
        await assert.rejects(scheduler.acquire([1] as never), /busy/);
        first.release();
        first.release();
        const lease = await second;
        assert.equal(scheduler.busySlots, 1);
        lease.release();
        assert.equal(scheduler.busySlots, 0);
    });
});
