-- wrk script: end wrk after N responses (`wrk -t1 ... -s stop_after.lua URL -- 100000`).
-- wrk has no request count, only a duration; the RSS measurement needs a count.
-- With one thread, after the Nth response the script prints
-- "responses N non-200 M" and exits wrk at once (wrk's own summary is not printed).
-- If the duration (-d) ends first, wrk prints its summary as usual.

local limit = 100000
local seen, not_ok = 0, 0

function init(args)
   limit = tonumber(args[1]) or limit
end

function response(status, headers, body)
   seen = seen + 1
   if status ~= 200 then
      not_ok = not_ok + 1
   end
   if seen >= limit then
      io.write(string.format("responses %d non-200 %d\n", seen, not_ok))
      io.flush()
      os.exit(0)
   end
end
