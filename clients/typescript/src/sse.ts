/** A Server-Sent Events parser (the WHATWG algorithm) over a streamed response body. */

export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** The body's lines as they arrive (line ends: CRLF, LF or CR). */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let match: RegExpExecArray | null;
      // A lone CR at the end may be the first half of a CRLF: wait for more.
      while ((match = /\r\n|\n|\r(?=[^\n])/.exec(buffer)) !== null) {
        yield buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
      }
    }
    if (buffer.endsWith("\r")) buffer = buffer.slice(0, -1);
    if (buffer) yield buffer;
  } finally {
    reader.releaseLock();
  }
}

/** The events of a `text/event-stream` body, each as soon as its blank line arrives. */
export async function* parseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  for await (const line of lines(body)) {
    if (line === "") {
      if (data.length > 0) yield { event: event || "message", data: data.join("\n"), id };
      event = "";
      data = [];
      continue;
    }
    if (line.startsWith(":")) continue; // a comment: the server's pings
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
    else if (name === "id" && !value.includes("\0")) id = value;
  }
}
