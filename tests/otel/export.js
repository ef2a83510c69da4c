// Drives the real OpenTelemetry JS SDK for tests/test_otlp.py: makes the spans
// a JSON plan (argv[2]) describes with a BasicTracerProvider, then exports
// them to the collector with the OTLP/HTTP exporter (encoding "json" or
// "proto") `exports` times, and prints one JSON line: the spans' ids and each
// export's result code (0 = success).
"use strict";

const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } =
  require("@opentelemetry/sdk-trace-base");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { SpanStatusCode } = require("@opentelemetry/api");

const plan = JSON.parse(process.argv[2]);
const { OTLPTraceExporter } = plan.encoding === "proto"
  ? require("@opentelemetry/exporter-trace-otlp-proto")
  : require("@opentelemetry/exporter-trace-otlp-http");

const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes(plan.resource || {}),
  spanProcessors: [new SimpleSpanProcessor(memory)],
});
const tracer = provider.getTracer(plan.scope || "vgc-test", "1.0.0");

// Times in the plan are epoch milliseconds; the SDK takes [seconds, nanos].
const hr = (ms) => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

for (const s of plan.spans) {
  const span = tracer.startSpan(s.name, { attributes: s.attributes || {}, startTime: hr(s.start) });
  if (s.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: s.error });
  span.end(hr(s.end));
}

const spans = memory.getFinishedSpans();
const exporter = new OTLPTraceExporter({
  url: plan.url,
  headers: { Authorization: `Bearer ${plan.key}` },
  compression: plan.gzip ? "gzip" : "none",
  timeoutMillis: 20000,
});

function exportOnce() {
  return new Promise((resolve) =>
    exporter.export(spans, (r) => resolve({ code: r.code, error: r.error ? String(r.error) : null })));
}

(async () => {
  const results = [];
  for (let i = 0; i < (plan.exports || 1); i++) results.push(await exportOnce());
  await exporter.shutdown();
  const ids = spans.map((s) => ({ name: s.name, traceId: s.spanContext().traceId, spanId: s.spanContext().spanId }));
  process.stdout.write(JSON.stringify({ ids, results }) + "\n");
})();
