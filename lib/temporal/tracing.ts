/**
 * Traces across API → workflow → activities (off unless `[temporal] otlp_endpoint` or
 * OTEL_EXPORTER_OTLP_ENDPOINT is set): the SDK's OpenTelemetry interceptors carry the trace in
 * Temporal headers, spans leave through OTLP/HTTP to the configured collector. The API's
 * client starts the trace (update-with-start); the worker continues it in the workflow (spans
 * exported through a sink, workflows stay deterministic) and in every activity.
 */
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  OpenTelemetryPlugin,
  OpenTelemetryWorkflowClientInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkflowClientInterceptor } from '@temporalio/client';

export interface Tracing {
  /** For Worker.create's `plugins`: workflow and activity interceptors, the span sink. */
  workerPlugin(): OpenTelemetryPlugin;
  /** Flushes what is buffered, then stops exporting. */
  shutdown(): Promise<void>;
}

/** Starts exporting this process's spans as `service` to the collector at `endpoint`. */
export function startTracing(endpoint: string, service: string): Tracing {
  const resource = new Resource({ 'service.name': service });
  const exporter = new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` });
  const processor = new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 });
  const provider = new BasicTracerProvider({ resource });
  provider.addSpanProcessor(processor);
  // Async context, so a span started around a call is the parent of what that call does.
  provider.register({ contextManager: new AsyncLocalStorageContextManager().enable() });
  return {
    workerPlugin: () => new OpenTelemetryPlugin({ resource, spanProcessor: processor }),
    shutdown: () => provider.shutdown(),
  };
}

/**
 * A client's interceptors: with tracing configured, a workflow start (or update-with-start)
 * opens the trace (harmless without a tracer provider: the process's spans go nowhere).
 */
export const tracingClientInterceptors = (config: {
  temporal: { otlpEndpoint?: string };
}): { workflow: WorkflowClientInterceptor[] } | Record<string, never> =>
  config.temporal.otlpEndpoint ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : {};
