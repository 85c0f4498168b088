-- The registry of live gateway processes: one sorted set (one hash slot, so Redis Cluster
-- works), member = process id, score = when its heartbeat runs out (server time).
-- Records this process's heartbeat, forgets the processes whose heartbeat ran out.
--
-- KEYS: 1 registry. ARGV: 1 process id, 2 heartbeat ttl ms. Reply: live processes.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl) + 1000)
return redis.call('ZCARD', KEYS[1])
