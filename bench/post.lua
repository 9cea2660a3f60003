-- wrk script: POST a 16 KiB body (size override: `wrk ... -s post.lua URL -- 4096`).
-- The bench app ("echo" in apps.py) reads wsgi.input fully and answers its length.
-- wrk adds Content-Length itself when wrk.body is set.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("p", 16384)

function init(args)
   local size = tonumber(args[1])
   if size then
      wrk.body = string.rep("p", size)
   end
end
