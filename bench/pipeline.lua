-- wrk script: HTTP/1.1 pipelining. Each write carries DEPTH GET requests
-- (default 16; override with `wrk ... -s pipeline.lua URL -- 32`).
-- wrk counts every response, so Requests/sec is responses per second.

local depth = 16
local batch

function init(args)
   depth = tonumber(args[1]) or depth
   local reqs = {}
   for i = 1, depth do
      reqs[i] = wrk.format()   -- GET wrk.path with wrk.headers
   end
   batch = table.concat(reqs)
end

function request()
   return batch
end
