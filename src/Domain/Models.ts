/** Model management wire types: tags, show, ps, version, pull/push/create progress, copy and delete. */
import { Schema } from "effect"
import { JsonObject, optional, optionalNullable, Options } from "./Common.js"
import { Message } from "./Chat.js"

export const ModelDetails = Schema.Struct({
  parent_model: optional(Schema.String),
  format: optional(Schema.String),
  family: optional(Schema.String),
  families: optionalNullable(Schema.Array(Schema.String)),
  parameter_size: optional(Schema.String),
  quantization_level: optional(Schema.String),
  context_length: optional(Schema.Number),
  embedding_length: optional(Schema.Number)
})
export type ModelDetails = typeof ModelDetails.Type

/** One entry of `/api/tags`. `name` and `model` are both the display name, e.g. `llama3.2:latest`. */
export const ListModel = Schema.Struct({
  name: Schema.String,
  model: Schema.String,
  modified_at: Schema.String,
  size: Schema.Number,
  digest: Schema.String,
  details: ModelDetails,
  capabilities: optional(Schema.Array(Schema.String)),
  remote_model: optional(Schema.String),
  remote_host: optional(Schema.String)
})
export type ListModel = typeof ListModel.Type

export const ListResponse = Schema.Struct({ models: Schema.Array(ListModel) })
export type ListResponse = typeof ListResponse.Type

/** One entry of `/api/ps`. */
export const RunningModel = Schema.Struct({
  name: Schema.String,
  model: Schema.String,
  size: Schema.Number,
  size_vram: optional(Schema.Number),
  digest: Schema.String,
  details: ModelDetails,
  expires_at: Schema.String,
  context_length: optional(Schema.Number)
})
export type RunningModel = typeof RunningModel.Type

export const PsResponse = Schema.Struct({ models: Schema.Array(RunningModel) })
export type PsResponse = typeof PsResponse.Type

/** `/api/show`; the deprecated `name` is accepted in place of `model`. */
export const ShowRequest = Schema.Struct({
  model: optional(Schema.String),
  name: optional(Schema.String),
  verbose: optional(Schema.Boolean),
  system: optional(Schema.String),
  template: optional(Schema.String),
  options: optional(Options)
})
export type ShowRequest = typeof ShowRequest.Type

export const ShowResponse = Schema.Struct({
  license: optional(Schema.String),
  modelfile: optional(Schema.String),
  parameters: optional(Schema.String),
  template: optional(Schema.String),
  system: optional(Schema.String),
  renderer: optional(Schema.String),
  parser: optional(Schema.String),
  details: optional(ModelDetails),
  messages: optionalNullable(Schema.Array(Message)),
  model_info: optional(JsonObject),
  projector_info: optional(JsonObject),
  capabilities: optionalNullable(Schema.Array(Schema.String)),
  modified_at: optional(Schema.String),
  requires: optional(Schema.String)
})
export type ShowResponse = typeof ShowResponse.Type

export const VersionResponse = Schema.Struct({ version: Schema.String })
export type VersionResponse = typeof VersionResponse.Type

/** `/api/pull` and `/api/push`; ollama-js sends the deprecated `name`. */
export const PullRequest = Schema.Struct({
  model: optional(Schema.String),
  name: optional(Schema.String),
  insecure: optional(Schema.Boolean),
  stream: optional(Schema.Boolean)
})
export type PullRequest = typeof PullRequest.Type

export const CreateRequest = Schema.Struct({
  model: Schema.String,
  from: optional(Schema.String),
  files: optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  adapters: optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  template: optional(Schema.String),
  license: optional(Schema.Union(Schema.String, Schema.Array(Schema.String))),
  system: optional(Schema.String),
  parameters: optional(JsonObject),
  messages: optional(Schema.Array(Message)),
  quantize: optional(Schema.String),
  stream: optional(Schema.Boolean)
})
export type CreateRequest = typeof CreateRequest.Type

/** A progress line of pull, push and create; the terminal line is `{"status":"success"}`. */
export const ProgressResponse = Schema.Struct({
  status: Schema.String,
  digest: optional(Schema.String),
  total: optional(Schema.Number),
  completed: optional(Schema.Number)
})
export type ProgressResponse = typeof ProgressResponse.Type

export const CopyRequest = Schema.Struct({ source: Schema.String, destination: Schema.String })
export type CopyRequest = typeof CopyRequest.Type

export const DeleteRequest = Schema.Struct({ model: optional(Schema.String), name: optional(Schema.String) })
export type DeleteRequest = typeof DeleteRequest.Type
