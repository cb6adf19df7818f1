var __defProp = Object.defineProperty;
var __name = (target, value) => __defProp(target, "name", { value, configurable: true });

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
    secrets: checkStringList(where, "secrets", spec.secrets),
    outbound: checkStringList(where, "outbound", spec.outbound),
    redact: checkStringList(where, "redact", spec.redact),
    permissions: Object.freeze({
      net: checkStringList(where, "permissions.net", permissions.net),
      env: checkStringList(where, "permissions.env", permissions.env)
    }),
    config: spec.config ?? {}
  });
}
__name(defineSlice, "defineSlice");

// ../_service.ts
var BadRequest = class extends Error {
  static {
    __name(this, "BadRequest");
  }
  status = 400;
};
var Forbidden = class extends Error {
  static {
    __name(this, "Forbidden");
  }
  status = 403;
};
var NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
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
  if (typeof value !== "string" || !NAME.test(value)) {
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
    nameField(body, spec.name, what);
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
  coordinates: "aether.infra:kv:1.0.0",
  methods: {
    get: forward("kv", "get", {
      name: "map",
      keys: [
        "key"
      ]
    }),
    put: forward("kv", "put", {
      name: "map",
      keys: [
        "key"
      ]
    }),
    delete: forward("kv", "delete", {
      name: "map",
      keys: [
        "key"
      ]
    }),
    add: forward("kv", "add", {
      name: "map",
      keys: [
        "key"
      ]
    })
  }
});
export {
  slice_default as default
};
