-- What is left of one organisation's limits on one model, read without changing anything
-- (GET /v1/organization/limits). Mirrors InProcessBackend.peek in memory.py.
--
-- KEYS: 1 rpm TAT, 2 rpd TAT, 3 tpm TAT, 4 tpd TAT, 5 lease sorted set, 6 monthly counter
-- Reply, as strings ('' where a key is absent): {server seconds, microseconds, the four TATs,
-- live leases, monthly tokens used}. Strings, because a number in a reply is cut to an integer.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local reply = {time[1], time[2]}
for i = 1, 4 do reply[i + 2] = redis.call('GET', KEYS[i]) or '' end
-- A lease whose expiry has passed no longer counts (admit.lua removes it on the next call).
reply[7] = tostring(redis.call('ZCOUNT', KEYS[5], '(' .. string.format('%.17g', now), '+inf'))
reply[8] = redis.call('GET', KEYS[6]) or ''
return reply
