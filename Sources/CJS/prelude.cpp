// The JavaScript half of the library API (the `redis` object and the client objects),
// run once in every engine before its library. It keeps the engine's natives in a closure
// and hands the C++ side four hooks; the library sees only `redis`.
#include "berth_js_prelude.h"

const char *const berth_js_prelude = R"JS(
(function (native) {
  'use strict';
  const Flags = Object.freeze({ NO_WRITES: 'no-writes', ALLOW_OOM: 'allow-oom', RAW_ARGUMENTS: 'raw-arguments' });
  const knownFlags = new Set(Object.values(Flags));
  const functions = new Map();
  const pending = new Map();
  let nextPromise = 1;
  let loading = false;

  const isCoroutine = (f) => Object.prototype.toString.call(f) === '[object AsyncFunction]';

  function register(async, a, b, c) {
    if (!loading) throw new Error('Functions can only be registered while the library loads');
    let name, callback, options;
    if (a !== null && typeof a === 'object') {
      name = a.name; callback = a.callback; options = a;
    } else {
      name = a; callback = b; options = c === undefined ? {} : c;
    }
    if (typeof name !== 'string' || !/^[A-Za-z0-9_]+$/.test(name))
      throw new Error('Function names can only contain letters, numbers, or underscores(_) and must be at least one character long');
    if (typeof callback !== 'function') throw new Error('The callback of function ' + name + ' is not a function');
    if (options === null || typeof options !== 'object') throw new Error('The options of function ' + name + ' must be an object');
    if (functions.has(name)) throw new Error('Function ' + name + ' already exists in the library');
    const flags = options.flags === undefined ? [] : options.flags;
    if (!Array.isArray(flags)) throw new Error('The flags of function ' + name + ' must be an array');
    for (const f of flags) if (!knownFlags.has(f)) throw new Error('Unknown function flag: ' + String(f));
    const description = options.description === undefined || options.description === null ? '' : String(options.description);
    const kind = isCoroutine(callback) ? 'coroutine' : async ? 'async' : 'sync';
    functions.set(name, { callback, kind, flags: new Set(flags), description });
  }

  // The client of a sync function, or the one client.block hands its callback: valid only
  // while its atomic section lasts.
  class SyncClient {
    #run; #valid = true; #raw;
    constructor(run) { this.#run = run; }
    #check() { if (!this.#valid) throw new Error('The client is no longer valid: its atomic section ended'); }
    invalidate() { this.#valid = false; }
    call(...args) { this.#check(); return native.call(this.#run, false, args); }
    callRaw(...args) { this.#check(); return native.call(this.#run, true, args); }
    callAsync(...args) { return callAsync(this.#run, false, args); }
    callAsyncRaw(...args) { return callAsync(this.#run, true, args); }
    isBlockAllowed() { return native.blockAllowed(this.#run); }
    executeAsync(fn) {
      if (typeof fn !== 'function') throw new Error('executeAsync takes a function');
      return Promise.resolve().then(() => fn(new AsyncClient(this.#run)));
    }
  }

  // The client of a coroutine: no commands of its own, only atomic sections and callAsync.
  class AsyncClient {
    #run;
    constructor(run) { this.#run = run; }
    block(fn) {
      if (typeof fn !== 'function') throw new Error('block takes a function');
      native.enter(this.#run);
      const client = new SyncClient(this.#run);
      try {
        return fn(client);
      } finally {
        client.invalidate();
        native.leave(this.#run);
      }
    }
    callAsync(...args) { return callAsync(this.#run, false, args); }
    callAsyncRaw(...args) { return callAsync(this.#run, true, args); }
    isBlockAllowed() { return native.blockAllowed(this.#run); }
  }

  function callAsync(run, raw, args) {
    const id = nextPromise++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      native.callAsync(run, id, raw, args);
    });
  }

  function follow(run, promise) {
    promise.then((v) => native.finish(run, v, false), (e) => native.finish(run, e, true));
  }

  function invoke(run, name, args) {
    const f = functions.get(name);
    if (f === undefined) return native.finish(run, new Error('ERR Unknown function'), true);
    if (!f.flags.has(Flags.RAW_ARGUMENTS)) args = args.map((a) => native.decode(a));
    if (f.kind === 'coroutine') {
      if (!native.blockAllowed(run)) return native.finish(run, new Error('ERR can not run a coroutine here: blocking is not allowed'), true);
      let promise;
      try {
        promise = f.callback(new AsyncClient(run), ...args);
      } catch (e) {
        return native.finish(run, e, true);
      }
      return follow(run, promise);
    }
    native.enter(run);
    const client = new SyncClient(run);
    let result, failed = false;
    try {
      result = f.callback(client, ...args);
    } catch (e) {
      failed = true;
      result = e;
    } finally {
      client.invalidate();
      native.leave(run);
    }
    if (failed) return native.finish(run, result, true);
    if (result instanceof Promise) {
      // Only a function registered as async may make its client wait for a promise.
      if (f.kind === 'sync') return native.finish(run, null, false);
      if (!native.blockAllowed(run)) return native.finish(run, new Error('ERR can not wait for a promise here: blocking is not allowed'), true);
      return follow(run, result);
    }
    return native.finish(run, result, false);
  }

  function settle(id, ok, value) {
    const p = pending.get(id);
    if (p === undefined) return;
    pending.delete(id);
    if (ok) p.resolve(value); else p.reject(value);
  }

  const redis = {
    registerFunction: (a, b, c) => register(false, a, b, c),
    registerAsyncFunction: (a, b, c) => register(true, a, b, c),
    functionFlags: Flags,
    log: (message) => native.log(2, String(message)),
    config: {},
  };

  return {
    redis,
    begin(config) { loading = true; redis.config = config; },
    end() {
      loading = false;
      const out = [];
      for (const [name, f] of functions) out.push(name, f.kind, [...f.flags].join(','), f.description);
      return out;
    },
    invoke,
    settle,
  };
})
)JS";
