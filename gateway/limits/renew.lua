-- Push a live lease's expiry forward (server time); a lease already gone stays gone.
-- KEYS: 1 lease sorted set. ARGV: 1 lease id, 2 lease ttl ms
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local ttl = tonumber(ARGV[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl) + 1000)
end
return 1
