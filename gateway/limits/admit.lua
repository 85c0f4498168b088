-- One admission, atomically: monthly quota, concurrency leases, then GCRA for RPM, RPD, TPM
-- and TPD. Nothing is written unless every limit allows the request. Mirrors memory.py.
--
-- Idempotent: a call retried because its reply was lost (a timeout after the script ran) finds
-- the reservation's marker and answers "admitted" again without counting it twice.
--
-- KEYS: 1 rpm TAT, 2 rpd TAT, 3 tpm TAT, 4 tpd TAT, 5 lease sorted set, 6 monthly counter,
--       7 the reservation's marker
-- ARGV: 1-6 the limits in KEYS order (-1 = unlimited), 7 token cost, 8 lease id ('' = none),
--       9 lease ttl ms (also the marker's), 10 monthly baseline (used when the counter does
--       not exist yet), 11 monthly counter ttl ms, 12 quota retry ms, 13 concurrency retry ms
-- Reply: {denied, kind, limit, used, retry_ms, rpd_remaining, rpd_reset_ms, tpm_remaining,
--         tpm_reset_ms}, -1 where not applicable. Integers only: that is what a reply carries.

-- Server time, so gateways on machines with skewed clocks share one timeline.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local EPS = 0.001
local PERIODS = {60000, 86400000, 60000, 86400000}
local limits = {}
for i = 1, 6 do limits[i] = tonumber(ARGV[i]) end
local tokens = tonumber(ARGV[7])
local costs = {1, 1, tokens, tokens}
local lease_id = ARGV[8]

local tats = {}
for i = 1, 4 do
  local stored = limits[i] >= 0 and redis.call('GET', KEYS[i])
  tats[i] = stored and math.max(tonumber(stored), now) or now
end

local function windows(current)
  local out = {}
  for _, i in ipairs({2, 3}) do
    if limits[i] < 0 then
      table.insert(out, -1)
      table.insert(out, -1)
    else
      local emission = PERIODS[i] / limits[i]
      local busy = current[i] - now
      -- The tolerance is in time, as for admission (see gcra.py: epoch-ms doubles).
      table.insert(out, math.max(0, math.floor((PERIODS[i] - busy + EPS) / emission)))
      table.insert(out, math.ceil(busy))
    end
  end
  return out
end

local function reply(head, current)
  local w = windows(current)
  return {head[1], head[2], head[3], head[4], head[5], w[1], w[2], w[3], w[4]}
end

if redis.call('EXISTS', KEYS[7]) == 1 then return reply({0, -1, -1, -1, 0}, tats) end

local quota_used = 0
if limits[6] >= 0 then
  quota_used = tonumber(redis.call('GET', KEYS[6]) or ARGV[10])
  if quota_used + tokens > limits[6] then
    return reply({1, 6, limits[6], quota_used, tonumber(ARGV[12])}, tats)
  end
end

local worst = nil
local function refuse(kind, limit, used, retry)
  if worst == nil or retry > worst[5] then
    worst = {1, kind, limit, used, math.ceil(retry)}
  end
end

if limits[5] >= 0 then
  -- Leases of workers that died stop counting once their expiry passes.
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local held = redis.call('ZCARD', KEYS[5])
  if held + 1 > limits[5] then refuse(5, limits[5], held, tonumber(ARGV[13])) end
end

local new_tats = {}
for i = 1, 4 do
  new_tats[i] = tats[i]
  if limits[i] >= 0 then
    local emission = PERIODS[i] / limits[i]
    new_tats[i] = tats[i] + costs[i] * emission
    local wait = new_tats[i] - PERIODS[i] - now
    if wait > EPS then
      local used = math.max(0, math.min(limits[i], math.ceil((tats[i] - now - EPS) / emission)))
      refuse(i, limits[i], used, wait)
    end
  end
end

if worst ~= nil then return reply(worst, tats) end

for i = 1, 4 do
  if limits[i] >= 0 then
    -- The key lives exactly as long as it holds anything: a full bucket is an absent key.
    redis.call('SET', KEYS[i], string.format('%.17g', new_tats[i]),
      'PX', math.ceil(new_tats[i] - now) + 1000)
  end
end
if limits[5] >= 0 and lease_id ~= '' then
  local ttl = tonumber(ARGV[9])
  redis.call('ZADD', KEYS[5], now + ttl, lease_id)
  redis.call('PEXPIRE', KEYS[5], math.ceil(ttl) + 1000)
end
if limits[6] >= 0 then
  redis.call('SET', KEYS[6], string.format('%d', quota_used + tokens), 'PX', tonumber(ARGV[11]))
end
redis.call('SET', KEYS[7], 'admitted', 'PX', ARGV[9])
return reply({0, -1, -1, -1, 0}, new_tats)
