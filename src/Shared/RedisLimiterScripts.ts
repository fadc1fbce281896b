/**
 * The Lua scripts of Shared/RedisLimiter.ts (see its module comment): each runs atomically in Redis, on Redis's clock
 * (`TIME`). The bucket scripts share a prelude that reads and refills the hash `KEYS[1]` from ARGV 1-3 (requests per
 * second, burst, model tokens per minute; -1 is no limit) and saves it with an expiry, or deletes it once full.
 * Replies are arrays of strings: a tag ("ok" or the refusing limit), a wait or retry in ms, the request and token
 * levels, and a window's count and time until empty.
 */

const prelude = `
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local rps, burst, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local s = redis.call("HMGET", KEYS[1], "r", "t", "at")
local r = tonumber(s[1]) or burst
local tk = tonumber(s[2]) or math.max(tpm, 0)
local elapsed = now - (tonumber(s[3]) or now)
if rps > 0 then
  if elapsed > 0 and r < burst then r = r + elapsed * rps / 1000 end
  r = math.min(burst, r)
end
if tpm > 0 then
  if elapsed > 0 and tk < tpm then tk = tk + elapsed * tpm / 60000 end
  tk = math.min(tpm, tk)
end
local function save()
  local full = 0
  if rps > 0 and r < burst then full = (burst - r) * 1000 / rps end
  if tpm > 0 and tk < tpm then full = math.max(full, (tpm - tk) * 60000 / tpm) end
  if full <= 0 then
    redis.call("DEL", KEYS[1])
  else
    redis.call("HSET", KEYS[1], "r", tostring(r), "t", tostring(tk), "at", tostring(now))
    redis.call("PEXPIRE", KEYS[1], math.ceil(full) + 1000)
  end
end
local function reply(tag, n, count, reset)
  return { tag, tostring(n), tostring(r), tostring(tk), tostring(count or 0), tostring(reset or 0) }
end
`

/**
 * KEYS: bucket, leases, window. ARGV 4-: maxWaitMs, concurrency (-1: none), lease id, lease ttl ms, window limit
 * (-1: none), window ms, request id.
 */
export const takeScript = `${prelude}
local maxWait, slots = tonumber(ARGV[4]), tonumber(ARGV[5])
local windowLimit, windowMs = tonumber(ARGV[8]), tonumber(ARGV[9])
if slots >= 0 then
  redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now)
  if redis.call("ZCARD", KEYS[2]) >= slots then return reply("concurrency", 0) end
end
local waitR, waitT, count, reset = 0, 0, 0, 0
if windowLimit >= 0 then
  redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", now - windowMs)
  count = redis.call("ZCARD", KEYS[3])
  if count >= windowLimit then
    local oldest = redis.call("ZRANGE", KEYS[3], 0, 0, "WITHSCORES")
    local newest = redis.call("ZRANGE", KEYS[3], -1, -1, "WITHSCORES")
    if oldest[2] then waitR = math.max(0, math.ceil(tonumber(oldest[2]) + windowMs - now)) end
    if newest[2] then reset = math.max(0, tonumber(newest[2]) + windowMs - now) end
  end
end
if rps > 0 and r < 1 - 1e-9 then waitR = math.max(0, math.ceil((1 - r) * 1000 / rps - 1e-6)) end
if tpm > 0 and tk < -1e-9 then waitT = math.max(0, math.ceil(-tk * 60000 / tpm - 1e-6)) end
local wait = math.max(waitR, waitT)
if wait > maxWait or (windowLimit >= 0 and count >= windowLimit) then
  if waitT > waitR then return reply("tokens", wait, count, reset) end
  return reply("requests", wait, count, reset)
end
if rps > 0 then r = r - 1 end
save()
if windowLimit >= 0 then
  redis.call("ZADD", KEYS[3], now, ARGV[10])
  redis.call("PEXPIRE", KEYS[3], windowMs)
  count = count + 1
  reset = windowMs
end
if slots >= 0 then
  redis.call("ZADD", KEYS[2], now + tonumber(ARGV[7]), ARGV[6])
  redis.call("PEXPIRE", KEYS[2], ARGV[7])
end
return reply("ok", wait, count, reset)
`

/** ARGV: rps, burst, tpm, tokens. */
export const chargeScript = `${prelude}
if tpm > 0 then tk = tk - tonumber(ARGV[4]) end
save()
return reply("ok", 0)
`

/** ARGV: rps, burst, tpm. */
export const refundScript = `${prelude}
if rps > 0 then r = math.min(burst, r + 1) end
save()
return reply("ok", 0)
`

/** KEYS: leases; ARGV: lease id, ttl ms. */
export const renewScript = `
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call("ZADD", KEYS[1], "XX", now + tonumber(ARGV[2]), ARGV[1])
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return 1
`
