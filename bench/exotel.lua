-- Exotel-shaped traffic for wrk: one SMS = two requests with one fresh SmsSid.
-- Bodies are English and Hindi, some matching a keyword (a reply) and some not (no reply).
-- wrk cannot read a HEAD answer that declares a non-zero Content-Length without sending a
-- body (it waits for the body: wrk issue #245), so an SMS that gets a reply is sent as
-- GET + GET; one that gets no reply as HEAD + GET, exactly as Exotel sends it. The server
-- does the same work for a first HEAD as for a first GET.
-- Set GET_ONLY=1 in the environment for servers that refuse HEAD (FastAPI answers 405).

local bodies = {
  {"ECHO+Thank+you+for+your+order", true},
  {"HELP", true},
  {"ORDER+1001", true},
  {"%E0%A4%86%E0%A4%B0%E0%A5%8D%E0%A4%A1%E0%A4%B0+%E0%A4%95%E0%A4%B9%E0%A4%BE%E0%A4%81+%E0%A4%B9%E0%A5%88%3F", false},
  {"thanks+see+you+soon", false},
  {"ECHO+%E0%A4%A7%E0%A4%A8%E0%A5%8D%E0%A4%AF%E0%A4%B5%E0%A4%BE%E0%A4%A6", true},
}
local get_only = os.getenv("GET_ONLY") == "1"
-- PACE_MS: wait this long before each request (a rate below the maximum; wrk's delay()).
local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
  function delay()
    return pace
  end
end
local thread_ids = 0

function setup(thread)
  thread_ids = thread_ids + 1
  thread:set("id", thread_ids)
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
  nonce = tostring(math.random(1, 1000000000))
  counter = 0
  current = nil
end

function request()
  counter = counter + 1
  local first = counter % 2 == 1
  if first then
    local n = math.floor((counter + 1) / 2)
    local pick = bodies[(n % #bodies) + 1]
    current = {
      path = "/exotel/sms?SmsSid=b" .. (id or 0) .. "x" .. nonce .. "x" .. n ..
        "&From=9" .. string.format("%09d", math.random(0, 999999999)) ..
        "&To=56070&Date=2026-11-26+10%3A00%3A00&Body=" .. pick[1],
      replies = pick[2],
    }
  end
  local method = "GET"
  if first and not current.replies and not get_only then
    method = "HEAD"
  end
  return wrk.format(method, current.path)
end
