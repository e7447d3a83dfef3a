"""In-memory storage with one global resourceVersion counter (as etcd's
revision), a history of changes for watches and exact reads, compaction,
and watcher fan-out."""

import collections
import copy
import threading
import time


class Change:
    __slots__ = ("rv", "skey", "key", "type", "obj", "prev")

    def __init__(self, rv, skey, key, type_, obj, prev):
        self.rv = rv
        self.skey = skey
        self.key = key
        self.type = type_
        self.obj = obj
        self.prev = prev


class Watcher:
    """One watch stream's queue. The store pushes Changes; the HTTP thread pops."""

    def __init__(self, skey, info):
        self.skey = skey
        self.info = info  # dict describing the watch (for /__test/state and faults)
        self.cond = threading.Condition()
        self.queue = collections.deque()
        self.closed = False
        self.close_mode = None  # "clean", "cut", "error410"
        self.bookmark_now = False
        self.overflow = False

    def push(self, change):
        with self.cond:
            if len(self.queue) > 100000:
                self.overflow = True
            self.queue.append(change)
            self.cond.notify()

    def close(self, mode="clean"):
        with self.cond:
            self.closed = True
            self.close_mode = mode
            self.cond.notify()

    def request_bookmark(self):
        with self.cond:
            self.bookmark_now = True
            self.cond.notify()

    def wait(self, timeout):
        """Return (changes, bookmark_requested, closed)."""
        with self.cond:
            if not self.queue and not self.closed and not self.bookmark_now:
                self.cond.wait(timeout)
            items = list(self.queue)
            self.queue.clear()
            bm = self.bookmark_now
            self.bookmark_now = False
            return items, bm, self.closed


class Store:
    def __init__(self, start_rv=1000, history=100000):
        self.lock = threading.RLock()
        self.rv_cond = threading.Condition(self.lock)
        self.rv = start_rv
        self.data = {}  # skey -> {key: obj}
        self.log = collections.deque()  # Change, oldest first
        self.history = history
        # The oldest resourceVersion from which a watch / exact list can still be
        # served: changes with rv > compacted are in the log.
        self.compacted = start_rv
        self.watchers = set()

    # ------------------------------------------------------------ basics
    def current_rv(self):
        with self.lock:
            return self.rv

    def bucket(self, skey):
        return self.data.setdefault(skey, {})

    def get(self, skey, key):
        with self.lock:
            o = self.bucket(skey).get(key)
            return copy.deepcopy(o) if o is not None else None

    def list(self, skey, ns=None):
        """Current objects (deep copies), sorted by key as etcd ranges are."""
        with self.lock:
            items = sorted(self.bucket(skey).items(), key=lambda kv: kv[0])
            return [copy.deepcopy(o) for k, o in items if ns is None or k[0] == ns]

    def list_at(self, skey, rv, ns=None):
        """Objects as they were at resourceVersion rv (needs rv >= compacted)."""
        with self.lock:
            state = {k: o for k, o in self.bucket(skey).items()}
            for ch in reversed(self.log):
                if ch.rv <= rv:
                    break
                if ch.skey != skey:
                    continue
                if ch.type == "ADDED":
                    state.pop(ch.key, None)
                else:
                    state[ch.key] = ch.prev
            items = sorted(state.items(), key=lambda kv: kv[0])
            return [copy.deepcopy(o) for k, o in items if o is not None and (ns is None or k[0] == ns)]

    def next_rv(self):
        self.rv += 1
        return self.rv

    # ------------------------------------------------------------ writes
    def write(self, skey, key, obj, type_):
        """Store obj (already stamped with its new resourceVersion, which must be
        self.rv after next_rv()) and notify watchers. Caller holds self.lock."""
        b = self.bucket(skey)
        prev = b.get(key)
        if type_ == "DELETED":
            b.pop(key, None)
        else:
            b[key] = copy.deepcopy(obj)
        ch = Change(self.rv, skey, key, type_, copy.deepcopy(obj), copy.deepcopy(prev) if prev is not None else None)
        self.log.append(ch)
        while len(self.log) > self.history:
            old = self.log.popleft()
            self.compacted = old.rv
        for w in list(self.watchers):
            if w.skey == skey:
                w.push(ch)
        self.rv_cond.notify_all()
        return ch

    def changes_since(self, skey, rv):
        with self.lock:
            return [c for c in self.log if c.rv > rv and c.skey == skey]

    def compact(self, rv=None):
        with self.lock:
            if rv is None:
                rv = self.rv
            rv = min(rv, self.rv)
            while self.log and self.log[0].rv <= rv:
                self.log.popleft()
            self.compacted = max(self.compacted, rv)
            return self.compacted

    def wait_for_rv(self, rv, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.rv < rv:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.rv_cond.wait(left)
            return True

    # ------------------------------------------------------------ watchers
    def add_watcher(self, w):
        with self.lock:
            self.watchers.add(w)

    def remove_watcher(self, w):
        with self.lock:
            self.watchers.discard(w)
