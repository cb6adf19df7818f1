var __defProp = Object.defineProperty;
var __name = (target, value) => __defProp(target, "name", { value, configurable: true });

// ../../slices/_machines.ts
var NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
var METHOD = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
var FIELD = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;
var OPS = [
  "eq",
  "ne",
  "gt",
  "gte",
  "lt",
  "lte",
  "exists",
  "absent",
  "in"
];
var MAX_MACHINES = 32;
var MAX_STATES = 64;
var MAX_EVENTS_PER_STATE = 64;
var MAX_GUARDS = 8;
var MAX_TIMEOUT_MS = 30 * 864e5;
var MAX_DECLARED_JOBS = 32;
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
__name(isObject, "isObject");
function guardProblems(value, path, problems) {
  const list = Array.isArray(value) ? value : [
    value
  ];
  if (list.length > MAX_GUARDS) problems.push({
    path,
    message: `has more than ${MAX_GUARDS} conditions`
  });
  const out = [];
  list.forEach((g, i) => {
    const at = Array.isArray(value) ? `${path}[${i}]` : path;
    if (!isObject(g)) return problems.push({
      path: at,
      message: "must be { field, op, value }"
    });
    if (typeof g.field !== "string" || !FIELD.test(g.field)) {
      problems.push({
        path: `${at}.field`,
        message: "must be a data field name or dotted path"
      });
    }
    if (!OPS.includes(g.op)) {
      problems.push({
        path: `${at}.op`,
        message: `must be one of ${OPS.join(", ")}`
      });
    }
    const needsValue = g.op !== "exists" && g.op !== "absent";
    if (needsValue && g.value === void 0) {
      problems.push({
        path: `${at}.value`,
        message: `is needed by ${g.op}`
      });
    }
    if (g.op === "in" && !Array.isArray(g.value)) {
      problems.push({
        path: `${at}.value`,
        message: "must be a list for in"
      });
    }
    if ([
      "gt",
      "gte",
      "lt",
      "lte"
    ].includes(g.op) && typeof g.value !== "number") {
      problems.push({
        path: `${at}.value`,
        message: `must be a number for ${g.op}`
      });
    }
    out.push({
      field: String(g.field),
      op: g.op,
      ...needsValue ? {
        value: g.value
      } : {}
    });
  });
  return out;
}
__name(guardProblems, "guardProblems");
function machinesProblems(value, path, methods) {
  const problems = [];
  const machines = {};
  if (!isObject(value)) {
    return {
      problems: [
        {
          path,
          message: "must be an object of machines by name"
        }
      ],
      machines
    };
  }
  const names = Object.keys(value);
  if (names.length > MAX_MACHINES) {
    problems.push({
      path,
      message: `declares more than ${MAX_MACHINES} machines`
    });
  }
  for (const name of names) {
    const at = `${path}.${name}`;
    if (!NAME.test(name)) {
      problems.push({
        path: at,
        message: "a machine name is 1-128 of A-Z a-z 0-9 . _ : @ -"
      });
    }
    const spec = value[name];
    if (!isObject(spec) || !isObject(spec.states)) {
      problems.push({
        path: at,
        message: "must be { initial, states: { name: { on: { event: target } } } }"
      });
      continue;
    }
    const stateNames = Object.keys(spec.states);
    if (stateNames.length === 0 || stateNames.length > MAX_STATES) {
      problems.push({
        path: `${at}.states`,
        message: `must declare 1 to ${MAX_STATES} states`
      });
    }
    if (typeof spec.initial !== "string" || !stateNames.includes(spec.initial)) {
      problems.push({
        path: `${at}.initial`,
        message: `must name one of the states (${stateNames.join(", ")})`
      });
    }
    const machine = {
      initial: String(spec.initial),
      states: {}
    };
    for (const stateName of stateNames) {
      const sAt = `${at}.states.${stateName}`;
      if (!NAME.test(stateName)) {
        problems.push({
          path: sAt,
          message: "a state name is 1-128 of A-Z a-z 0-9 . _ : @ -"
        });
      }
      const state = spec.states[stateName];
      if (!isObject(state)) {
        problems.push({
          path: sAt,
          message: "must be { on?, timeout?, onEnter? }"
        });
        continue;
      }
      for (const key of Object.keys(state)) {
        if (![
          "on",
          "timeout",
          "onEnter"
        ].includes(key)) {
          problems.push({
            path: `${sAt}.${key}`,
            message: "is not a state field (on, timeout, onEnter)"
          });
        }
      }
      const out = {
        on: {}
      };
      const on = state.on ?? {};
      if (!isObject(on)) problems.push({
        path: `${sAt}.on`,
        message: "must be an object of event: target"
      });
      else {
        const events = Object.keys(on);
        if (events.length > MAX_EVENTS_PER_STATE) {
          problems.push({
            path: `${sAt}.on`,
            message: `has more than ${MAX_EVENTS_PER_STATE} events`
          });
        }
        for (const event of events) {
          const eAt = `${sAt}.on.${event}`;
          if (!NAME.test(event)) {
            problems.push({
              path: eAt,
              message: "an event name is 1-128 of A-Z a-z 0-9 . _ : @ -"
            });
          }
          const t = on[event];
          const target = typeof t === "string" ? t : isObject(t) ? t.target : void 0;
          if (typeof target !== "string" || !stateNames.includes(target)) {
            problems.push({
              path: eAt,
              message: `must name a target state (${stateNames.join(", ")})`
            });
            continue;
          }
          const guard = isObject(t) && t.guard !== void 0 ? guardProblems(t.guard, `${eAt}.guard`, problems) : [];
          out.on[event] = {
            target,
            guard
          };
        }
      }
      if (state.timeout !== void 0) {
        const timeout = state.timeout;
        if (!isObject(timeout)) {
          problems.push({
            path: `${sAt}.timeout`,
            message: "must be { afterMs, event }"
          });
        } else {
          const afterMs = timeout.afterMs;
          if (typeof afterMs !== "number" || !Number.isInteger(afterMs) || afterMs < 1 || afterMs > MAX_TIMEOUT_MS) {
            problems.push({
              path: `${sAt}.timeout.afterMs`,
              message: `must be an integer from 1 to ${MAX_TIMEOUT_MS}`
            });
          }
          if (typeof timeout.event !== "string" || !NAME.test(timeout.event)) {
            problems.push({
              path: `${sAt}.timeout.event`,
              message: "must be an event name"
            });
          } else if (isObject(on) && !(timeout.event in on)) {
            problems.push({
              path: `${sAt}.timeout.event`,
              message: `"${timeout.event}" has no transition from ${stateName}`
            });
          }
          out.timeout = {
            afterMs: Number(afterMs),
            event: String(timeout.event)
          };
        }
      }
      if (state.onEnter !== void 0) {
        if (typeof state.onEnter !== "string" || !METHOD.test(state.onEnter) || methods && !methods.has(state.onEnter)) {
          problems.push({
            path: `${sAt}.onEnter`,
            message: "must name a method of the slice"
          });
        }
        out.onEnter = String(state.onEnter);
      }
      machine.states[stateName] = out;
    }
    machines[name] = machine;
  }
  return {
    problems,
    machines
  };
}
__name(machinesProblems, "machinesProblems");
function jobsProblems(value, path, methods) {
  const problems = [];
  const jobs = {};
  if (!isObject(value)) return {
    problems: [
      {
        path,
        message: "must be an object of jobs by name"
      }
    ],
    jobs
  };
  const names = Object.keys(value);
  if (names.length > MAX_DECLARED_JOBS) {
    problems.push({
      path,
      message: `declares more than ${MAX_DECLARED_JOBS} jobs`
    });
  }
  for (const name of names) {
    const at = `${path}.${name}`;
    if (!NAME.test(name)) {
      problems.push({
        path: at,
        message: "a job name is 1-128 of A-Z a-z 0-9 . _ : @ -"
      });
    }
    const job = value[name];
    if (!isObject(job)) {
      problems.push({
        path: at,
        message: 'must be { cron: "0 3 * * *", method: "report" }'
      });
      continue;
    }
    const fields = typeof job.cron === "string" ? job.cron.trim().split(/\s+/).length : 0;
    if (typeof job.cron !== "string" || fields !== 5 && fields !== 6 || !/^[0-9A-Za-z*/,?#LW\s-]+$/.test(job.cron)) {
      problems.push({
        path: `${at}.cron`,
        message: "must be a cron expression of 5 fields (or 6, seconds first)"
      });
    }
    if (typeof job.method !== "string" || !METHOD.test(job.method) || methods && !methods.has(job.method)) {
      problems.push({
        path: `${at}.method`,
        message: "must name a method of the slice"
      });
    }
    if (job.misfire !== void 0 && job.misfire !== "skip" && job.misfire !== "catchup") {
      problems.push({
        path: `${at}.misfire`,
        message: 'must be "skip" or "catchup"'
      });
    }
    if (job.tz !== void 0 && typeof job.tz !== "string") {
      problems.push({
        path: `${at}.tz`,
        message: "must be a time zone name"
      });
    }
    for (const key of Object.keys(job)) {
      if (![
        "cron",
        "tz",
        "method",
        "payload",
        "misfire"
      ].includes(key)) {
        problems.push({
          path: `${at}.${key}`,
          message: "is not a job field (cron, tz, method, payload, misfire)"
        });
      }
    }
    jobs[name] = {
      cron: String(job.cron).trim(),
      method: String(job.method),
      ...job.tz !== void 0 ? {
        tz: String(job.tz)
      } : {},
      ...job.payload !== void 0 ? {
        payload: job.payload
      } : {},
      ...job.misfire !== void 0 ? {
        misfire: job.misfire
      } : {}
    };
  }
  return {
    problems,
    jobs
  };
}
__name(jobsProblems, "jobsProblems");

// ../../slices/_subscriptions.ts
var MAX_DECLARED_SUBSCRIPTIONS = 32;
var NAME2 = /^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$/;
var FIELDS = [
  "topic",
  "group",
  "method",
  "maxAttempts",
  "from"
];
function subscriptionsProblems(value, path, methods, requires) {
  const problems = [];
  const subscriptions = [];
  if (!Array.isArray(value)) {
    return {
      problems: [
        {
          path,
          message: 'must be a list like [{ topic: "orders", group: "billing", method: "onOrder" }]'
        }
      ],
      subscriptions
    };
  }
  if (value.length > MAX_DECLARED_SUBSCRIPTIONS) {
    problems.push({
      path,
      message: `declares more than ${MAX_DECLARED_SUBSCRIPTIONS} subscriptions`
    });
  }
  if (value.length > 0 && requires && !requires.includes("pubsub")) {
    problems.push({
      path,
      message: 'need "pubsub" in requires'
    });
  }
  const seen = /* @__PURE__ */ new Set();
  value.forEach((entry, i) => {
    const at = `${path}[${i}]`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      problems.push({
        path: at,
        message: 'must be { topic: "orders", group: "billing", method: "onOrder" }'
      });
      return;
    }
    const s = entry;
    for (const field of Object.keys(s)) {
      if (!FIELDS.includes(field)) {
        problems.push({
          path: `${at}.${field}`,
          message: `is not a subscription field (${FIELDS.join(", ")})`
        });
      }
    }
    for (const field of [
      "topic",
      "group"
    ]) {
      if (typeof s[field] !== "string" || !NAME2.test(s[field])) {
        problems.push({
          path: `${at}.${field}`,
          message: "must be 1-60 letters, digits, '.', '_' or '-'"
        });
      }
    }
    if (typeof s.method !== "string" || methods && !methods.has(s.method)) {
      problems.push({
        path: `${at}.method`,
        message: `must name a method of this slice${methods ? ` (${[
          ...methods
        ].join(", ")})` : ""}`
      });
    }
    if (s.maxAttempts !== void 0 && (typeof s.maxAttempts !== "number" || !Number.isInteger(s.maxAttempts) || s.maxAttempts < 1 || s.maxAttempts > 100)) {
      problems.push({
        path: `${at}.maxAttempts`,
        message: "must be an integer from 1 to 100"
      });
    }
    if (s.from !== void 0 && s.from !== "earliest" && s.from !== "latest") {
      problems.push({
        path: `${at}.from`,
        message: 'must be "earliest" or "latest"'
      });
    }
    const key = `${s.topic}/${s.group}`;
    if (seen.has(key)) {
      problems.push({
        path: at,
        message: `subscribes group ${s.group} to topic ${s.topic} twice`
      });
    }
    seen.add(key);
    subscriptions.push({
      topic: s.topic,
      group: s.group,
      method: s.method,
      ...s.maxAttempts === void 0 ? {} : {
        maxAttempts: s.maxAttempts
      },
      ...s.from === void 0 ? {} : {
        from: s.from
      }
    });
  });
  return {
    problems,
    subscriptions
  };
}
__name(subscriptionsProblems, "subscriptionsProblems");

// ../../slices/_define.ts
var METHOD_NAME = /^[a-z][a-zA-Z0-9]+$/;
var ROUTE = /^(GET|POST|PUT|PATCH|DELETE) (\/\S*)$/;
var SliceDefinitionError = class extends Error {
  static {
    __name(this, "SliceDefinitionError");
  }
  constructor(message) {
    super(message);
    this.name = "SliceDefinitionError";
  }
};
function describeWhere(spec) {
  return `defineSlice(${typeof spec.coordinates === "string" ? spec.coordinates : "?"})`;
}
__name(describeWhere, "describeWhere");
function checkStringList(where, field, value) {
  if (value === void 0) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new SliceDefinitionError(`${where}: ${field} must be a list of strings`);
  }
  return Object.freeze([
    ...value
  ]);
}
__name(checkStringList, "checkStringList");
function checkMethods(where, methods) {
  if (methods === null || typeof methods !== "object") {
    throw new SliceDefinitionError(`${where}: methods must be an object of functions`);
  }
  const names = Object.keys(methods);
  if (names.length === 0) {
    throw new SliceDefinitionError(`${where}: methods is empty; a slice needs one method`);
  }
  for (const name of names) {
    if (!METHOD_NAME.test(name)) {
      throw new SliceDefinitionError(`${where}: method name "${name}" must match ${METHOD_NAME.source} (lower camel case, 2+ characters)`);
    }
    if (typeof methods[name] !== "function") {
      throw new SliceDefinitionError(`${where}: methods.${name} must be a function`);
    }
  }
}
__name(checkMethods, "checkMethods");
function checkHttp(where, http, methods) {
  if (http === void 0) return;
  if (http === null || typeof http !== "object") {
    throw new SliceDefinitionError(`${where}: http must be an object`);
  }
  const { prefix, routes = {}, errors = {} } = http;
  if (typeof prefix !== "string" || !prefix.startsWith("/")) {
    throw new SliceDefinitionError(`${where}: http.prefix must be a path starting with "/"`);
  }
  for (const [method, route] of Object.entries(routes)) {
    if (!(method in methods)) {
      throw new SliceDefinitionError(`${where}: http.routes.${method} names no method of this slice`);
    }
    if (typeof route !== "string" || !ROUTE.test(route)) {
      throw new SliceDefinitionError(`${where}: http.routes.${method} is ${JSON.stringify(route)}; expected "METHOD /path" with METHOD one of GET, POST, PUT, PATCH, DELETE`);
    }
  }
  for (const [status, patterns] of Object.entries(errors)) {
    const code = Number(status);
    if (!Number.isInteger(code) || code < 400 || code > 599) {
      throw new SliceDefinitionError(`${where}: http.errors key ${status} is not an HTTP error status (400-599)`);
    }
    checkStringList(where, `http.errors.${status}`, patterns);
  }
}
__name(checkHttp, "checkHttp");
function checkCalls(where, calls) {
  if (calls === void 0) return;
  if (calls === null || typeof calls !== "object") {
    throw new SliceDefinitionError(`${where}: calls must be an object`);
  }
  for (const [name, ref] of Object.entries(calls)) {
    if (ref?.kind !== "aether.slice-ref") {
      throw new SliceDefinitionError(`${where}: calls.${name} must be made with slice<Api>("group:artifact", "^1.0.0")`);
    }
  }
}
__name(checkCalls, "checkCalls");
function defineSlice(spec) {
  if (spec === null || typeof spec !== "object") {
    throw new SliceDefinitionError("defineSlice: expected an object");
  }
  const where = describeWhere(spec);
  if (typeof spec.coordinates !== "string" || spec.coordinates.split(":").length !== 3) {
    throw new SliceDefinitionError(`${where}: coordinates must be "group:artifact:version"`);
  }
  checkMethods(where, spec.methods);
  for (const hook of [
    "start",
    "stop"
  ]) {
    if (spec[hook] !== void 0 && typeof spec[hook] !== "function") {
      throw new SliceDefinitionError(`${where}: ${hook} must be a function`);
    }
  }
  checkHttp(where, spec.http, spec.methods);
  checkCalls(where, spec.calls);
  const permissions = spec.permissions ?? {};
  if (permissions === null || typeof permissions !== "object") {
    throw new SliceDefinitionError(`${where}: permissions must be an object`);
  }
  if (spec.config !== void 0 && (spec.config === null || typeof spec.config !== "object")) {
    throw new SliceDefinitionError(`${where}: config must be an object of field schemas`);
  }
  return Object.freeze({
    kind: "aether.slice",
    format: 1,
    coordinates: spec.coordinates,
    methods: spec.methods,
    start: spec.start,
    stop: spec.stop,
    http: spec.http,
    calls: spec.calls ?? {},
    requires: checkStringList(where, "requires", spec.requires),
    ...checkDeclarations(where, spec),
    ...checkSubscriptions(where, spec.subscriptions, spec.methods, spec.requires),
    secrets: checkStringList(where, "secrets", spec.secrets),
    outbound: checkStringList(where, "outbound", spec.outbound),
    redact: checkStringList(where, "redact", spec.redact),
    databases: checkDatabases(where, spec.databases),
    permissions: Object.freeze({
      net: checkStringList(where, "permissions.net", permissions.net),
      env: checkStringList(where, "permissions.env", permissions.env)
    }),
    config: spec.config ?? {}
  });
}
__name(defineSlice, "defineSlice");
function checkDatabases(where, databases) {
  if (databases === void 0) return {};
  if (databases === null || typeof databases !== "object" || Array.isArray(databases)) {
    throw new SliceDefinitionError(`${where}: databases must be an object of { migrations: [...] } by name`);
  }
  const out = {};
  for (const [name, spec] of Object.entries(databases)) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(name)) {
      throw new SliceDefinitionError(`${where}: databases.${name}: a name is 1-64 letters, digits, '.', '_', '-'`);
    }
    if (spec === null || typeof spec !== "object") {
      throw new SliceDefinitionError(`${where}: databases.${name} must be an object like { migrations: [...] }`);
    }
    const migrations = checkStringList(where, `databases.${name}.migrations`, spec.migrations);
    out[name] = Object.freeze({
      migrations
    });
  }
  return Object.freeze(out);
}
__name(checkDatabases, "checkDatabases");
function checkSubscriptions(where, value, methods, requires) {
  if (value === void 0) return {};
  const { problems, subscriptions } = subscriptionsProblems(value, "subscriptions", new Set(Object.keys(methods)), Array.isArray(requires) ? requires : []);
  if (problems.length > 0) {
    throw new SliceDefinitionError(`${where}: ${problems[0].path} ${problems[0].message}`);
  }
  return {
    subscriptions: Object.freeze(subscriptions)
  };
}
__name(checkSubscriptions, "checkSubscriptions");
function checkDeclarations(where, spec) {
  const methods = new Set(Object.keys(spec.methods));
  const out = {};
  for (const [field, check] of [
    [
      "machines",
      machinesProblems
    ],
    [
      "jobs",
      jobsProblems
    ]
  ]) {
    const value = spec[field];
    if (value === void 0) continue;
    const { problems } = check(value, field, methods);
    if (problems.length > 0) {
      throw new SliceDefinitionError(`${where}: ${problems[0].path} ${problems[0].message}`);
    }
    out[field] = value;
  }
  return out;
}
__name(checkDeclarations, "checkDeclarations");

// ../_service.ts
var BadRequest = class extends Error {
  static {
    __name(this, "BadRequest");
  }
  // The name is the problem's title and the error name callers match (an Error subclass's is "Error").
  name = "BadRequest";
  status = 400;
};
var Forbidden = class extends Error {
  static {
    __name(this, "Forbidden");
  }
  name = "Forbidden";
  status = 403;
};
var NAME3 = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
var MAX_KEY_BYTES = 512;
function callerGroup(ctx, what) {
  const caller = ctx.caller;
  const group = typeof caller === "string" ? caller.split(":")[0] : "";
  if (!group) {
    throw new Forbidden(`${what}: infrastructure services answer slices only (ctx.infra in a slice whose manifest requires it)`);
  }
  return group;
}
__name(callerGroup, "callerGroup");
function requestObject(request, what) {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new BadRequest(`${what}: the request must be a JSON object`);
  }
  return request;
}
__name(requestObject, "requestObject");
function nameField(request, field, what) {
  const value = request[field];
  if (typeof value !== "string" || !NAME3.test(value)) {
    throw new BadRequest(`${what}: ${field} must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(value)}`);
  }
  return value;
}
__name(nameField, "nameField");
function keyField(request, field, what) {
  const value = request[field];
  if (typeof value !== "string" || value === "") {
    throw new BadRequest(`${what}: ${field} must be a non-empty string`);
  }
  if (new TextEncoder().encode(value).byteLength > MAX_KEY_BYTES) {
    throw new BadRequest(`${what}: ${field} is over ${MAX_KEY_BYTES} bytes`);
  }
  return value;
}
__name(keyField, "keyField");
function forward(service, method, spec) {
  const what = `${service}.${method}`;
  return (request, ctx) => {
    callerGroup(ctx, what);
    const body = requestObject(request, what);
    if (spec.name !== void 0) nameField(body, spec.name, what);
    for (const key of spec.keys ?? []) keyField(body, key, what);
    return ctx.serviceHost(method, {
      caller: ctx.caller,
      request: body
    });
  };
}
__name(forward, "forward");

// slice.ts
var slice_default = defineSlice({
  coordinates: "aether.infra:scheduler:1.0.0",
  methods: {
    schedule: forward("scheduler", "schedule", {
      name: "job"
    }),
    get: forward("scheduler", "get", {
      name: "job"
    }),
    pause: forward("scheduler", "pause", {
      name: "job"
    }),
    resume: forward("scheduler", "resume", {
      name: "job"
    }),
    delete: forward("scheduler", "delete", {
      name: "job"
    }),
    run: forward("scheduler", "run", {
      name: "job"
    }),
    history: forward("scheduler", "history", {
      name: "job"
    })
  }
});
export {
  slice_default as default
};
