/** Tests of the history parsers: accepted syntax, the meaning of each completion type, and located errors. */

import { describe, expect, it } from "vitest";
import { HistoryParseError, parseCasRegisterHistory, parseKeyValueHistory } from "../src/lincheck/index.js";

const NEVER = Number.POSITIVE_INFINITY;

/** Builds a cas-register log, one event per argument; `|` stands for the field separator. */
const casLog = (...events: string[]) => events.map((event) => `INFO  jepsen.util - ${event.replaceAll("|", "\t")}`).join("\n");

function parseErrorOf(parse: () => unknown): HistoryParseError {
  try {
    parse();
  } catch (error) {
    if (error instanceof HistoryParseError) return error;
    throw error;
  }
  throw new Error("expected a HistoryParseError, but parsing succeeded");
}

describe("cas-register log parser", () => {
  it("pairs invocations with completions, using line numbers as times", () => {
    const operations = parseCasRegisterHistory(
      casLog("0|:invoke|:read|nil", "1|:invoke|:write|4", "0|:ok|:read|nil", "1|:ok|:write|4", "2|:invoke|:cas|[4 0]", "2|:ok|:cas|[4 0]"),
    );
    expect(operations).toEqual([
      { clientId: 0, input: { kind: "read" }, output: { kind: "read", value: null }, call: 1, return: 3 },
      { clientId: 1, input: { kind: "write", value: 4 }, output: { kind: "write" }, call: 2, return: 4 },
      { clientId: 2, input: { kind: "cas", from: 4, to: 0 }, output: { kind: "cas", succeeded: true }, call: 5, return: 6 },
    ]);
  });

  it("accepts runs of spaces as separators, CRLF line ends and blank lines", () => {
    const text = "INFO  jepsen.util - 3   :invoke   :read   nil\r\n\r\nINFO  jepsen.util - 3 :ok :read 2\r\n";
    expect(parseCasRegisterHistory(text)).toEqual([{ clientId: 3, input: { kind: "read" }, output: { kind: "read", value: 2 }, call: 1, return: 3 }]);
  });

  it("reads a failed cas as a compare that did not hold", () => {
    const [operation] = parseCasRegisterHistory(casLog("1|:invoke|:cas|[0 3]", "1|:fail|:cas|[0 3]"));
    expect(operation?.output).toEqual({ kind: "cas", succeeded: false });
  });

  it("keeps info writes and cas open to the end with unknown outcome", () => {
    const operations = parseCasRegisterHistory(casLog("4|:invoke|:write|3", "5|:invoke|:cas|[1 2]", "4|:info|:write|:timed-out", "5|:info|:cas|:timed-out"));
    expect(operations.map(({ output, return: returned }) => ({ output, returned }))).toEqual([
      { output: undefined, returned: NEVER },
      { output: undefined, returned: NEVER },
    ]);
  });

  it("closes a timed-out read where it failed, with unknown outcome", () => {
    const operations = parseCasRegisterHistory(casLog("0|:invoke|:read|nil", "0|:fail|:read|:timed-out", "0|:invoke|:read|nil", "0|:ok|:read|1"));
    expect(operations[0]).toEqual({ clientId: 0, input: { kind: "read" }, output: undefined, call: 1, return: 2 });
    expect(operations).toHaveLength(2);
  });

  it("leaves out a write that definitely failed", () => {
    expect(parseCasRegisterHistory(casLog("0|:invoke|:write|1", "0|:fail|:write|1"))).toEqual([]);
  });

  it("keeps invocations never completed open to the end", () => {
    const [operation] = parseCasRegisterHistory(casLog("7|:invoke|:write|2"));
    expect(operation).toMatchObject({ output: undefined, call: 1, return: NEVER });
  });

  it.each([
    ["a non-numeric process", "x|:invoke|:read|nil", /process must be a non-negative integer/],
    ["an unknown type", "1|:begin|:read|nil", /type must be one of/],
    ["an unknown function", "1|:invoke|:delete|nil", /f must be one of/],
    ["a missing value", "1|:invoke|:read", /missing value/],
    ["an unrecognised value", "1|:invoke|:write|four", /unrecognised value/],
    ["a cas without a pair", "1|:invoke|:cas|3", /cas invocation must carry \[from to\]/],
    ["a completion without invocation", "1|:ok|:read|3", /never invoked/],
  ])("rejects %s with its line number", (_, badEvent, reason) => {
    const error = parseErrorOf(() => parseCasRegisterHistory(`${casLog("0|:invoke|:read|nil", "0|:ok|:read|nil")}\n\n${casLog(badEvent)}`, { source: "h.log" }));
    expect(error.line).toBe(4);
    expect(error.reason).toMatch(reason);
    expect(error.source).toBe("h.log");
    expect(error.message).toMatch(/^h\.log:4: /);
  });

  it("rejects a line in another format", () => {
    const error = parseErrorOf(() => parseCasRegisterHistory(`${casLog("0|:invoke|:read|nil")}\nWARN something else`));
    expect(error.line).toBe(2);
    expect(error.reason).toMatch(/expected "INFO jepsen.util - <process>/);
    expect(error.text).toBe("WARN something else");
  });

  it("rejects an invocation while the process is busy", () => {
    const error = parseErrorOf(() => parseCasRegisterHistory(casLog("0|:invoke|:read|nil", "0|:invoke|:write|1")));
    expect(error.line).toBe(2);
    expect(error.reason).toMatch(/still pending/);
  });

  it("rejects a completion of another function or with other arguments", () => {
    expect(parseErrorOf(() => parseCasRegisterHistory(casLog("0|:invoke|:read|nil", "0|:ok|:write|1"))).reason).toMatch(/invoked :read on line 1/);
    expect(parseErrorOf(() => parseCasRegisterHistory(casLog("0|:invoke|:write|1", "0|:ok|:write|2"))).reason).toMatch(/does not match/);
    expect(parseErrorOf(() => parseCasRegisterHistory(casLog("0|:invoke|:cas|[1 2]", "0|:fail|:cas|[2 1]"))).reason).toMatch(/does not match/);
  });
});

describe("key-value parser", () => {
  const line = (process: number, type: string, f: string, key: string, value: string) =>
    `{:process ${process}, :type :${type}, :f :${f}, :key "${key}", :value ${value}}`;

  it("parses gets, puts and appends", () => {
    const text = [
      line(0, "invoke", "append", "0", '"x 0 0 y"'),
      line(1, "invoke", "get", "7", "nil"),
      line(0, "ok", "append", "0", '"x 0 0 y"'),
      line(1, "ok", "get", "7", '""'),
      line(2, "invoke", "put", "3", '"a \\"quoted\\" value"'),
      line(2, "ok", "put", "3", '"a \\"quoted\\" value"'),
    ].join("\n");
    expect(parseKeyValueHistory(text)).toEqual([
      { clientId: 0, input: { kind: "append", key: "0", value: "x 0 0 y" }, output: { kind: "append" }, call: 1, return: 3 },
      { clientId: 1, input: { kind: "get", key: "7" }, output: { kind: "get", value: "" }, call: 2, return: 4 },
      { clientId: 2, input: { kind: "put", key: "3", value: 'a "quoted" value' }, output: { kind: "put" }, call: 5, return: 6 },
    ]);
  });

  it("keeps an info append open to the end and leaves out a failed one", () => {
    const text = [line(0, "invoke", "append", "0", '"x"'), line(0, "info", "append", "0", '"x"'), line(1, "invoke", "append", "0", '"y"'), line(1, "fail", "append", "0", '"y"')].join("\n");
    expect(parseKeyValueHistory(text)).toEqual([{ clientId: 0, input: { kind: "append", key: "0", value: "x" }, output: undefined, call: 1, return: NEVER }]);
  });

  it.each([
    ["a line that is not a map", "process 0", /expected '\{'/],
    ["an unterminated string", '{:process 0, :type :invoke, :f :get, :key "7, :value nil}', /unterminated string/],
    ["a missing field", "{:process 0, :type :invoke, :f :get, :value nil}", /missing :key/],
    ["an extra field", '{:process 0, :type :invoke, :f :get, :key "7", :value nil, :time 3}', /unexpected field :time/],
    ["an unknown type", line(0, "begin", "get", "7", "nil"), /:type must be one of/],
    ["a get invocation with a value", line(0, "invoke", "get", "7", '"v"'), /must be nil/],
    ["an append without a string", line(0, "invoke", "append", "7", "nil"), /must be a string/],
    ["text after the map", `${line(0, "invoke", "get", "7", "nil")} trailing`, /unexpected text after/],
    ["a completion without invocation", line(0, "ok", "get", "7", '""'), /never invoked/],
  ])("rejects %s with its line number", (_, badLine, reason) => {
    const text = `${line(5, "invoke", "get", "1", "nil")}\n${line(5, "ok", "get", "1", '""')}\n${badLine}\n`;
    const error = parseErrorOf(() => parseKeyValueHistory(text));
    expect(error.line).toBe(3);
    expect(error.reason).toMatch(reason);
  });

  it("rejects a completion for another key or value", () => {
    const invoke = line(0, "invoke", "append", "1", '"x"');
    expect(parseErrorOf(() => parseKeyValueHistory(`${invoke}\n${line(0, "ok", "append", "2", '"x"')}`)).reason).toMatch(/invoked key "1"/);
    expect(parseErrorOf(() => parseKeyValueHistory(`${invoke}\n${line(0, "ok", "append", "1", '"z"')}`)).reason).toMatch(/does not match/);
  });
});
