"""Fault injection rules for tests.

A rule matches requests by method, path (regular expression searched in the
URL path), query (regular expression searched in the raw query string),
whether the request is a watch, and the user; it applies to the next
`count` matching requests (after letting `skip` of them through).  -1 means
every matching request.  Actions:

  status  answer with an HTTP status (Status object, plain text or empty body),
          optionally with Retry-After.
  stall   wait `seconds` before answering (phase "before": before the status
          line; "headers": after the headers, before the body), then answer normally
          unless `then` names another action.
  cut     watch streams: close the connection abruptly after `afterBytes`
          bytes of events (mid-object); other responses: send the headers
          with the full Content-Length but only `afterBytes` bytes of body.
  reset   close the connection without answering.
  body    answer `code` (default 200) with `body` verbatim and `contentType`.
"""

import itertools
import re
import threading


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.ids = itertools.count(1)
        self.fired = []  # history: (rule id, method, path)

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("fault must be a JSON object")
        action = spec.get("action") or spec.get("type")
        if action not in ("status", "stall", "cut", "reset", "body"):
            raise ValueError("unknown fault action %r (status, stall, cut, reset, body)" % action)
        rule = dict(spec)
        rule["action"] = action
        rule.setdefault("count", 1)
        rule.setdefault("skip", 0)
        for k in ("path", "query"):
            if rule.get(k):
                re.compile(rule[k])
        if action == "status":
            if "code" not in rule:
                raise ValueError("status fault needs a code")
        if action == "stall":
            rule.setdefault("seconds", 5)
            rule.setdefault("phase", "before")
        if action == "cut":
            rule.setdefault("afterBytes", 0)
        with self.lock:
            rule["id"] = next(self.ids)
            rule["fired"] = 0
            self.rules.append(rule)
        return rule

    def clear(self):
        with self.lock:
            self.rules = []

    def remove(self, rid):
        with self.lock:
            self.rules = [r for r in self.rules if r["id"] != rid]

    def list(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def match(self, method, path, query, is_watch, user):
        with self.lock:
            for r in self.rules:
                if r.get("method") and r["method"].upper() != method:
                    continue
                if r.get("path") and not re.search(r["path"], path):
                    continue
                if r.get("query") and not re.search(r["query"], query or ""):
                    continue
                if r.get("watch") is not None and bool(r["watch"]) != is_watch:
                    continue
                if r.get("user") and r["user"] != user:
                    continue
                if r["skip"] > 0:
                    r["skip"] -= 1
                    continue
                if r["count"] == 0:
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                r["fired"] += 1
                self.fired.append((r["id"], method, path))
                del self.fired[:-1000]
                hit = dict(r)
                if r["count"] == 0:
                    self.rules.remove(r)
                return hit
        return None
