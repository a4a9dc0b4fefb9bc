-- wrk script for bench/webhook_ingest.py: POST a Big Interview delivery whose
-- notification id is unique per request (run prefix, thread number, counter).
-- Arguments (after "--"): run prefix, webhook key, target delay in ms (0 = none).
-- Counts the 200 answers per thread and prints one JSON line at the end. Run it with one
-- connection per thread (-t N -c N): each thread then has at most one request in flight,
-- so its stored ids must be exactly prefix1..prefixK with K = answered or answered + 1.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local template = [[{"webhook": {"id": "%s", "event_name": "interview.created", "partner_id": "bench-user", "api_id": "95607", "api_type": "Interview", "api_object": {"id": 95607, "title": "Top 10 Questions", "interviewer_name": "Jordan", "category": "Top 10 Questions: 1", "completed": true, "created_at": "2015-05-18T16:37:13.000Z", "updated_at": "2015-05-18T16:37:13.000Z", "links": {"review": "/members/mock_interviews/95607", "retake": "/members/mock_interviews/interview_info/52"}}}}]]

function init(args)
  prefix = (args[1] or "run") .. "-t" .. thread_number .. "-"
  key = args[2] or ""
  pause = tonumber(args[3] or "0")
  counter = 0
  ok = 0
  other = 0
  headers = {
    ["Authorization"] = key,
    ["Content-Type"] = "application/json; charset=utf-8",
    ["User-Agent"] = "BigInterview/1.0",
  }
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, string.format(template, prefix .. counter))
end

function delay()
  return pause
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local ok_total, other_total, per_thread = 0, 0, {}
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    other_total = other_total + thread:get("other")
    table.insert(per_thread, string.format('{"prefix": "%s", "sent": %d, "ok": %d}',
      thread:get("prefix"), thread:get("counter"), thread:get("ok")))
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "ok": %d, "non_200": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %.1f, "threads": [%s]}\n',
    summary.requests, summary.duration, ok_total, other_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, table.concat(per_thread, ", ")))
end
