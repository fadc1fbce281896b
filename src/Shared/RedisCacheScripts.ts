/**
 * The Lua scripts of the shared response cache (RedisCache.ts), each one atomic on the Redis server, and the key
 * layout they work on. Every key starts with the connection's prefix (`sluice:` by default):
 *
 *   <prefix>cache:v:<slot>     the entry: a tagged, maybe deflated, JSON value, with PX = the cache's TTL
 *   <prefix>cache:lock:<slot>  the stampede lock: the holder's token, PX = lockTtl, renewed while its call runs
 *   <prefix>cache:index        sorted set: slot -> expiry (Redis ms), for the bounds
 *   <prefix>cache:sizes        hash: slot -> bytes stored
 *   <prefix>cache:bytes        the sum of sizes
 *   <prefix>cache:done         pub/sub channel: a slot was stored or its lock released
 *
 * Choices:
 * - The bounds are kept by the store script itself (entries and bytes over the whole deployment, oldest expiry
 *   evicted first), not by Redis's `maxmemory` policy: the same Redis holds the limits' counters, which an
 *   `allkeys-lru` eviction could drop, and a cache must not depend on how the operator configured Redis.
 * - Expired entries leave the index lazily: each store removes up to 64 of them.
 * - Time is Redis's own (`TIME`), so instances with skewed clocks agree on expiry. The scripts touch keys they
 *   compute (evicted entries), which a Redis Cluster would refuse: the shared Redis is one server (or a primary
 *   with replicas), as docs/scale-out.md says.
 */
import type { Redis as IoRedis } from "ioredis"

export interface Keys {
  readonly value: (slot: string) => string
  readonly lock: (slot: string) => string
  readonly valuePrefix: string
  readonly index: string
  readonly sizes: string
  readonly bytes: string
  readonly channel: string
}

export const keysOf = (prefix: string): Keys => ({
  value: (slot) => `${prefix}cache:v:${slot}`,
  lock: (slot) => `${prefix}cache:lock:${slot}`,
  valuePrefix: `${prefix}cache:v:`,
  index: `${prefix}cache:index`,
  sizes: `${prefix}cache:sizes`,
  bytes: `${prefix}cache:bytes`,
  channel: `${prefix}cache:done`
})

/** KEYS value, lock. The entry and its ms left, else 1 when the lock is held, else 0. */
const peek = `
local v = redis.call('GET', KEYS[1])
if v then return {v, redis.call('PTTL', KEYS[1])} end
return redis.call('EXISTS', KEYS[2])`

/** KEYS value, lock; ARGV token, lockTtlMs. The entry and its ms left, else 1 when the lock was taken, else 0. */
const claim = `
local v = redis.call('GET', KEYS[1])
if v then return {v, redis.call('PTTL', KEYS[1])} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`

/** KEYS lock; ARGV token, lockTtlMs. 1 when the lock was still ours and is extended. */
const renew = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

const drop = `
local function drop(slot)
  local size = tonumber(redis.call('HGET', KEYS[4], slot) or '0')
  redis.call('HDEL', KEYS[4], slot)
  redis.call('ZREM', KEYS[3], slot)
  redis.call('DECRBY', KEYS[5], size)
  return size
end`

/**
 * KEYS value, lock, index, sizes, bytes; ARGV token (or ''), data (or '': store nothing), ttlMs, maxEntries,
 * maxBytes, slot, value prefix, channel (or ''). Stores the entry within the bounds, releases the lock if the
 * token still holds it, and publishes the slot.
 */
const store = `${drop}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, slot in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 64)) do drop(slot) end
if ARGV[2] ~= '' then
  drop(ARGV[6])
  local size = string.len(ARGV[2])
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[6], size)
  local total = redis.call('INCRBY', KEYS[5], size)
  while redis.call('ZCARD', KEYS[3]) > tonumber(ARGV[4]) or total > tonumber(ARGV[5]) do
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not oldest then break end
    total = total - drop(oldest)
    redis.call('DEL', ARGV[7] .. oldest)
  end
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[6]) end
return 1`

/** KEYS value, lock, index, sizes, bytes; ARGV slot. Removes an entry. */
const remove = `${drop}
drop(ARGV[1])
return redis.call('DEL', KEYS[1])`

const scripts = {
  sluiceCachePeek: { numberOfKeys: 2, lua: peek },
  sluiceCacheClaim: { numberOfKeys: 2, lua: claim },
  sluiceCacheRenew: { numberOfKeys: 1, lua: renew },
  sluiceCacheStore: { numberOfKeys: 5, lua: store },
  sluiceCacheRemove: { numberOfKeys: 5, lua: remove }
} as const

export type Script = keyof typeof scripts

type Command = (...args: Array<string | number | Buffer>) => Promise<unknown>

/**
 * Runs a script (ioredis sends it by SHA and loads it again after a Redis restart); `Buffer` variants return bulk
 * strings as Buffers. The scripts are defined on the client once.
 */
export const call = (client: IoRedis, script: Script, buffers = false): Command => {
  const commands = client as unknown as Record<string, Command | undefined>
  if (commands[script] === undefined) {
    for (const [name, definition] of Object.entries(scripts)) client.defineCommand(name, definition)
  }
  return commands[buffers ? `${script}Buffer` : script]!.bind(client)
}
