-- wrk script: POST the body in $BODY_FILE. With $DELAY_MS > 0 each
-- connection waits about that long before each request, which caps the rate
-- at connections / (DELAY_MS + latency) (wrk2 is not in Debian). wrk takes
-- whole milliseconds, so a fractional mean is drawn as floor or ceiling in
-- the right proportion.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
if delay_ms > 0 then
  local whole = math.floor(delay_ms)
  local fraction = delay_ms - whole
  function delay()
    if math.random() < fraction then
      return whole + 1
    end
    return whole
  end
end
