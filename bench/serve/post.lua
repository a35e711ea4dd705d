-- wrk script: POST the body in $BODY_FILE; with $DELAY_MS > 0 each connection
-- waits that long before each request, which caps the rate at about
-- connections / (DELAY_MS + latency) (wrk2 is not in Debian).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end
