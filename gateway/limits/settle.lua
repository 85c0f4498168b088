-- A request ended: correct its token reservation to the real count, give its lease back.
-- Mirrors InProcessBackend.settle in memory.py. Idempotent: the reservation's marker records
-- that it was settled, so a retried call (or one replayed after an outage) changes nothing.
--
-- KEYS: 1 tpm TAT, 2 tpd TAT, 3 lease sorted set, 4 monthly counter, 5 the reservation's marker
-- ARGV: 1 token delta (actual - reserved), 2 tpm limit, 3 tpd limit, 4 monthly limit
--       (-1 = unlimited), 5 lease id ('' = none), 6 marker ttl ms

if redis.call('GET', KEYS[5]) == 'settled' then return 0 end
redis.call('SET', KEYS[5], 'settled', 'PX', ARGV[6])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local delta = tonumber(ARGV[1])
local PERIODS = {60000, 86400000}

if delta ~= 0 then
  for i = 1, 2 do
    local limit = tonumber(ARGV[i + 1])
    if limit >= 0 then
      local stored = redis.call('GET', KEYS[i])
      local tat = stored and math.max(tonumber(stored), now) or now
      local new_tat = math.max(tat + delta * PERIODS[i] / limit, now)
      if new_tat > now then
        redis.call('SET', KEYS[i], string.format('%.17g', new_tat),
          'PX', math.ceil(new_tat - now) + 1000)
      else
        redis.call('DEL', KEYS[i])
      end
    end
  end
  if tonumber(ARGV[4]) >= 0 and redis.call('EXISTS', KEYS[4]) == 1 then
    local corrected = math.max(0, tonumber(redis.call('GET', KEYS[4])) + delta)
    redis.call('SET', KEYS[4], string.format('%d', corrected), 'KEEPTTL')
  end
end
if ARGV[5] ~= '' then redis.call('ZREM', KEYS[3], ARGV[5]) end
return 1
