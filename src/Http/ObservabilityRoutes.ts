/**
 * `GET /metrics`: every metric in Effect's registry as Prometheus text format 0.0.4 (see
 * `Observability/Prometheus.ts` for why the registry is rendered directly). The engine's gauges are sampled just
 * before rendering when a `Sampler` is provided, so a scrape is as fresh as the request; without one, only the
 * process metrics are sampled. The route needs nothing from the context; mount it beside the gateway's routes.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import * as Prometheus from "../Observability/Prometheus.js"
import { sampleNow } from "../Observability/Sampler.js"

/** The Prometheus scrape answer. */
export const metrics = Effect.zipRight(sampleNow, Prometheus.scrape).pipe(
  Effect.map((text) => HttpServerResponse.text(text, { contentType: Prometheus.contentType }))
)

export const routes = HttpRouter.empty.pipe(HttpRouter.get("/metrics", metrics))
