/**
 * Streams on the client connection (`watch` → `event` frames → a final
 * `response`), and per-call abort signals, over real sockets on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type ClientError, type ClientHandler, type StreamSink, SynodClient, SynodServer, silentLogger } from "../src/index.js";

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const resource of open.splice(0).reverse()) await resource.close();
});

interface Served {
  readonly url: string;
  readonly server: SynodServer;
  /** The sinks of the streams the handler opened, and whether each was stopped. */
  readonly streams: { query: unknown; sink: StreamSink; stopped: boolean }[];
}

async function serve(handler: Partial<ClientHandler> = {}, maxStreamsPerConnection?: number): Promise<Served> {
  const streams: Served["streams"] = [];
  const clients: ClientHandler = {
    handle: async (body) => (body.kind === "command" ? new Promise(() => undefined) : { ok: true, result: body.kind }),
    watch: (query, sink) => {
      const entry = { query, sink, stopped: false };
      streams.push(entry);
      return () => {
        entry.stopped = true;
      };
    },
    ...handler,
  };
  const server = new SynodServer({ self: "a", clusterId: "streams", host: "127.0.0.1", port: 0, peers: ["a"], secret: undefined, logger: silentLogger, onPeerMessage: () => undefined, clients, ...(maxStreamsPerConnection === undefined ? {} : { maxStreamsPerConnection }) });
  const port = await server.listen();
  open.push(server);
  return { url: `ws://127.0.0.1:${port}`, server, streams };
}

function client(url: string): SynodClient {
  const made = new SynodClient({ urls: [url], requestTimeoutMs: 500, operationTimeoutMs: 2_000 });
  open.push(made);
  return made;
}

async function until(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("client streams", () => {
  it("delivers a stream's items in order, then its final error, once", async () => {
    const served = await serve();
    const received: unknown[] = [];
    const ends: ClientError[] = [];
    await client(served.url).stream({ from: 7 }, { onData: (data) => received.push(data), onEnd: (error) => ends.push(error) });
    await until(() => served.streams.length === 1, "the stream to open");
    const stream = served.streams[0] as Served["streams"][number];
    expect(stream.query).toEqual({ from: 7 });
    for (let index = 0; index < 100; index += 1) stream.sink.send({ index });
    stream.sink.end({ ok: false, error: { code: "WATCH_SLOW", message: "too slow", details: { resumeRevision: 42 } } });
    stream.sink.send({ index: "after the end" });
    await until(() => ends.length === 1, "the end");
    expect(received).toEqual(Array.from({ length: 100 }, (_, index) => ({ index })));
    expect(ends[0]?.code).toBe("WATCH_SLOW");
    expect(ends[0]?.details).toEqual({ resumeRevision: 42 });
    expect(stream.stopped).toBe(true);
    expect(served.server.statistics.openStreams).toBe(0);
  });

  it("a cancel from the client stops the server's side and nothing more is delivered", async () => {
    const served = await serve();
    const received: unknown[] = [];
    const ends: ClientError[] = [];
    const handle = await client(served.url).stream({}, { onData: (data) => received.push(data), onEnd: (error) => ends.push(error) });
    await until(() => served.streams.length === 1, "the stream to open");
    const stream = served.streams[0] as Served["streams"][number];
    stream.sink.send(1);
    await until(() => received.length === 1, "the first item");
    handle.cancel();
    await until(() => stream.stopped, "the server to stop the stream");
    expect(stream.sink.closed).toBe(true);
    stream.sink.send(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual([1]);
    expect(ends).toEqual([]);
  });

  it("a lost connection ends the stream with DISCONNECTED on the client and stops it on the server", async () => {
    const served = await serve();
    const ends: ClientError[] = [];
    await client(served.url).stream({}, { onData: () => undefined, onEnd: (error) => ends.push(error) });
    await until(() => served.streams.length === 1, "the stream to open");
    await served.server.close();
    await until(() => ends.length === 1, "the client to notice");
    expect(ends[0]?.code).toBe("DISCONNECTED");
    await until(() => served.streams[0]?.stopped === true, "the server side to stop");
  });

  it("a server without streams refuses them with UNSUPPORTED", async () => {
    const served = await serve({ watch: undefined });
    const ends: ClientError[] = [];
    await client(served.url).stream({}, { onData: () => undefined, onEnd: (error) => ends.push(error) });
    await until(() => ends.length === 1, "the refusal");
    expect(ends[0]?.code).toBe("UNSUPPORTED");
  });

  it("a handler that ends a stream at once (a bad query) answers with its error", async () => {
    const served = await serve({
      watch: (_query, sink) => {
        sink.end({ ok: false, error: { code: "COMPACTED", message: "gone", details: { compactRevision: 9 } } });
        return () => undefined;
      },
    });
    const ends: ClientError[] = [];
    await client(served.url).stream({}, { onData: () => undefined, onEnd: (error) => ends.push(error) });
    await until(() => ends.length === 1, "the error");
    expect([ends[0]?.code, ends[0]?.details]).toEqual(["COMPACTED", { compactRevision: 9 }]);
    expect(served.server.statistics.openStreams).toBe(0);
  });
});

describe("stream limits", () => {
  it("refuses a stream over the per-connection limit with TOO_MANY_STREAMS, and admits one after a cancel", async () => {
    const served = await serve({}, 2);
    const synod = client(served.url);
    const ends: ClientError[] = [];
    const handlers = { onData: () => undefined, onEnd: (error: ClientError) => ends.push(error) };
    const first = await synod.stream({ n: 1 }, handlers);
    await synod.stream({ n: 2 }, handlers);
    await synod.stream({ n: 3 }, handlers);
    await until(() => ends.length === 1, "the refusal");
    expect([ends[0]?.code, ends[0]?.details]).toEqual(["TOO_MANY_STREAMS", { limit: 2 }]);
    first.cancel();
    await until(() => served.server.statistics.openStreams === 1, "the cancel");
    await synod.stream({ n: 4 }, handlers);
    await until(() => served.streams.length === 3, "the fourth stream to open");
    expect(ends).toHaveLength(1);
  });
});

describe("abort signals", () => {
  it("an aborted call rejects at once with the signal's reason", async () => {
    const served = await serve();
    const synod = client(served.url);
    const controller = new AbortController();
    // The handler never answers commands: only the signal can end this call.
    const pending = synod.propose({ op: 1 }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("caller gave up")), 50);
    await expect(pending).rejects.toThrow("caller gave up");
  });

  it("an already aborted signal rejects before anything is sent", async () => {
    const served = await serve();
    await expect(client(served.url).read({}, { signal: AbortSignal.abort(new Error("too late")) })).rejects.toThrow("too late");
  });
});
