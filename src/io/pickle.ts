// A restricted unpickler (protocols 2 to 5) for model files, in the spirit of PyTorch's
// `torch.load(weights_only=True)`. It interprets the opcodes a state_dict uses and never runs
// code: a pickle names a global (module + name) and asks to call it, and here every global must
// be on the caller's allow-list, which says what a call to it builds. Everything else is refused
// with a message naming the global, because a model file that runs code on the defender's
// machine is exactly how a backdoored model would attack its defender.
//
// A pickle is also a small program that can build any object graph: a dict that contains itself
// (through the memo), nesting a hundred thousand levels deep, millions of empty containers from
// a few kilobytes. The interpreter here is a loop (no recursion), counts what it builds against
// limits, and checks the finished graph once (acyclic, bounded height) before handing it out,
// so whoever walks the value afterwards cannot loop forever or overflow the call stack.
import { escapeControls } from "../util/printable.js";
import { BadExpertError } from "../util/errors.js";

/** A pickle that is malformed, refused, or beyond a limit. */
export class PickleError extends BadExpertError {
  override name = "PickleError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_MODEL_FORMAT", message, options);
  }
}

export interface PickleLimits {
  /** Deepest nesting of containers in the built value, and of open MARKs on the stack. */
  maxDepth: number;
  /** Containers built (dicts, lists, tuples, call results) plus the items put into them; also the most values the stack may hold. */
  maxObjects: number;
  /** Opcodes interpreted (bounds the time one pickle can take). */
  maxOps: number;
  /** Memo entries (Python's pickler memoises about ten per tensor). */
  maxMemo: number;
}

/**
 * Far above what a state_dict or checkpoint pickle needs (a state_dict nests 2 to 4 levels,
 * builds about twenty objects and memoises about ten values per tensor; Python's own pickler
 * cannot write nesting deeper than its recursion limit of 1000), and low enough that a hostile
 * pickle costs at most a few hundred megabytes (a million empty dicts take about 240 MB) and a
 * few seconds. Map sizes stay far below V8's limit of 2^24 entries.
 */
export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxDepth: 1000,
  maxObjects: 1_000_000,
  maxOps: 50_000_000,
  maxMemo: 2_000_000,
};

/** A Python tuple (kept apart from lists: persistent ids and call arguments are tuples). */
export class PickleTuple {
  constructor(readonly items: PickleValue[]) {}
}

/** A Python dict or OrderedDict, in insertion order. String and number keys compare by value. */
export class PickleDict {
  readonly entries = new Map<PickleKey, PickleValue>();
}

/** A value built by an allow-listed global (a tensor record, a storage reference, ...). */
export abstract class PickleObject {
  abstract readonly kind: string;
  /** BUILD (pickle's __setstate__) on this object; refused unless a subclass accepts it. */
  build(_state: PickleValue): void {
    throw new Error(`BUILD (setting state) on a ${this.kind} is not allowed`);
  }
}

/** A global the pickle named and the allow-list accepted (a class or a function). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: GlobalHandler,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

export type PickleKey = string | number | bigint | boolean | null | PickleValue;
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleTuple
  | PickleDict
  | PickleObject
  | PickleGlobal;

export interface GlobalHandler {
  /** What calling the global with these arguments builds (REDUCE / NEWOBJ); absent: the global may only be referred to. */
  call?: (args: PickleValue[]) => PickleValue;
}

export interface UnpickleOptions {
  /** The allow-list: the handler for module.name, or undefined to refuse it. */
  resolveGlobal(module: string, name: string): GlobalHandler | undefined;
  /** What a persistent id (pickle's out-of-file references: PyTorch's storages) stands for. */
  persistentLoad?(pid: PickleValue): PickleValue;
  /** Named in messages, e.g. the file path. */
  source?: string;
  /** Added to the refusal message of a global that is not allowed. */
  refusalHint?: string;
  /** Overrides of DEFAULT_PICKLE_LIMITS. */
  limits?: Partial<PickleLimits>;
}

const MARK = Symbol("mark");
/** Longest LONG1/LONG4 integer read (the legacy format's magic number takes 10 bytes). */
const MAX_LONG_BYTES = 64;

/** Text from the file (a global's name, a handler's message) escaped and cut to 200 characters. */
function short(text: string): string {
  const e = escapeControls(text, 200);
  return e.length > 200 ? `${e.slice(0, 200)}…` : e;
}
type StackItem = PickleValue | typeof MARK;

/**
 * Interprets `bytes` as one pickle and returns the value it builds: an acyclic graph no deeper
 * than maxDepth. Throws a PickleError on anything not allowed.
 */
export function unpickle(bytes: Uint8Array, o: UnpickleOptions): PickleValue {
  const limits = { ...DEFAULT_PICKLE_LIMITS, ...o.limits };
  const where = short(o.source ?? "pickle");
  const value = new Unpickler(bytes, o, limits, where).run();
  checkGraph(value, limits.maxDepth, where);
  return value;
}

/** The values a container holds (dict keys included), or undefined for a leaf. */
function children(v: PickleValue): PickleValue[] | undefined {
  if (Array.isArray(v)) return v;
  if (v instanceof PickleTuple) return v.items;
  if (v instanceof PickleDict) {
    const out: PickleValue[] = [];
    for (const [k, x] of v.entries) out.push(k as PickleValue, x);
    return out;
  }
  return undefined;
}

/**
 * Refuses a reference cycle (a container reachable from itself) and nesting deeper than
 * `maxDepth`, in one depth-first pass that visits each container once: shared sub-graphs (a
 * memoised tuple used twice, or a chain of lists that each hold the next one twice) cost their
 * size, not the number of paths through them.
 */
function checkGraph(root: PickleValue, maxDepth: number, where: string): void {
  const rootKids = children(root);
  if (!rootKids) return;
  // Height of each finished container (1 for one holding only leaves); a container in the
  // map with height 0 is on the current path.
  const height = new Map<object, number>();
  const path: { node: object; kids: PickleValue[]; next: number; h: number }[] = [
    { node: root as object, kids: rootKids, next: 0, h: 1 },
  ];
  height.set(root as object, 0);
  while (path.length > 0) {
    const top = path[path.length - 1] as (typeof path)[number];
    if (top.next === top.kids.length) {
      path.pop();
      height.set(top.node, top.h);
      const parent = path[path.length - 1];
      if (parent) parent.h = Math.max(parent.h, top.h + 1);
      continue;
    }
    const child = top.kids[top.next++] as PickleValue;
    const kids = children(child);
    if (!kids) continue;
    const known = height.get(child as object);
    if (known === 0) {
      const levels = path.length - path.findIndex((f) => f.node === child);
      throw new PickleError(
        `${where}: the pickle holds a reference cycle (a ${describe(child)} that contains itself${levels > 1 ? `, ${levels} levels down` : ""}); a state_dict never does`,
      );
    }
    if (known !== undefined) {
      top.h = Math.max(top.h, known + 1);
    } else {
      if (path.length >= maxDepth)
        throw new PickleError(
          `${where}: the pickle nests containers more than ${maxDepth} levels deep; a state_dict nests a few`,
        );
      height.set(child as object, 0);
      path.push({ node: child as object, kids, next: 0, h: 1 });
    }
    if (top.h > maxDepth)
      throw new PickleError(
        `${where}: the pickle nests containers more than ${maxDepth} levels deep; a state_dict nests a few`,
      );
  }
}

class Unpickler {
  readonly #b: Uint8Array;
  readonly #v: DataView;
  readonly #o: UnpickleOptions;
  readonly #limits: PickleLimits;
  readonly #where: string;
  #at = 0;
  readonly #stack: StackItem[] = [];
  readonly #memo = new Map<number, PickleValue>();
  /** MARKs on the stack: each one opens a level of nesting. */
  #marks = 0;
  #objects = 0;
  #ops = 0;

  constructor(bytes: Uint8Array, o: UnpickleOptions, limits: PickleLimits, where: string) {
    this.#b = bytes;
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#o = o;
    this.#limits = limits;
    this.#where = where;
  }

  #fail(msg: string): never {
    throw new PickleError(`${this.#where}: ${msg}`);
  }

  /** Counts `n` objects built or items stored against maxObjects. */
  #count(n: number): void {
    this.#objects += n;
    if (this.#objects > this.#limits.maxObjects)
      this.#fail(
        `the pickle builds more than ${this.#limits.maxObjects} objects; a state_dict needs about twenty per tensor`,
      );
  }

  /** Pushes a container or object the pickle built. */
  #pushBuilt(v: PickleValue, items = 0): void {
    this.#count(1 + items);
    this.#push(v);
  }

  #memoize(i: number, v: PickleValue): void {
    if (!Number.isSafeInteger(i) || i < 0) this.#fail("a memo index must be a non-negative integer");
    if (this.#memo.size >= this.#limits.maxMemo && !this.#memo.has(i))
      this.#fail(`the pickle memoises more than ${this.#limits.maxMemo} values`);
    this.#memo.set(i, v);
  }

  #need(n: number): number {
    if (n < 0 || this.#at + n > this.#b.length)
      this.#fail(`truncated pickle (needs ${n} bytes at offset ${this.#at} of ${this.#b.length})`);
    const at = this.#at;
    this.#at += n;
    return at;
  }

  #u8(): number {
    return this.#b[this.#need(1)] as number;
  }
  #u16(): number {
    return this.#v.getUint16(this.#need(2), true);
  }
  #u32(): number {
    return this.#v.getUint32(this.#need(4), true);
  }
  #i32(): number {
    return this.#v.getInt32(this.#need(4), true);
  }
  #u64(): number {
    const v = this.#v.getBigUint64(this.#need(8), true);
    if (v > BigInt(this.#b.length)) this.#fail(`length ${v} exceeds the file size`);
    return Number(v);
  }
  #bytes(n: number): Uint8Array {
    const at = this.#need(n);
    return this.#b.subarray(at, at + n);
  }
  #utf8(n: number): string {
    const bytes = this.#bytes(n);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return this.#fail(`a string at offset ${this.#at - n} is not valid UTF-8`);
    }
  }
  #line(): string {
    const end = this.#b.indexOf(0x0a, this.#at);
    if (end < 0) this.#fail("truncated pickle (unterminated text line)");
    const s = new TextDecoder("latin1").decode(this.#b.subarray(this.#at, end));
    this.#at = end + 1;
    return s;
  }

  #push(v: PickleValue): void {
    // GET and DUP push values already built: nothing new but the stack's own slots.
    if (this.#stack.length >= this.#limits.maxObjects)
      this.#fail(`the pickle's stack holds more than ${this.#limits.maxObjects} values`);
    this.#stack.push(v);
  }

  #pop(): PickleValue {
    const v = this.#stack.pop();
    if (v === undefined) this.#fail("stack underflow");
    if (v === MARK) this.#fail("unexpected MARK on the stack");
    return v;
  }

  #top(): PickleValue {
    const v = this.#stack[this.#stack.length - 1];
    if (v === undefined || v === MARK) this.#fail("stack underflow");
    return v;
  }

  #mark(): void {
    if (this.#marks >= this.#limits.maxDepth)
      this.#fail(`more than ${this.#limits.maxDepth} nested MARKs (nesting deeper than a state_dict's)`);
    this.#marks++;
    this.#stack.push(MARK); // at most maxDepth of them
  }

  /** Pops everything down to the last MARK. */
  #popMark(): PickleValue[] {
    const i = this.#stack.lastIndexOf(MARK);
    if (i < 0) this.#fail("no MARK on the stack");
    const items = this.#stack.splice(i) as PickleValue[];
    items.shift();
    this.#marks--;
    return items;
  }

  #global(module: string, name: string): PickleGlobal {
    const h = this.#o.resolveGlobal(module, name);
    if (!h) {
      this.#fail(
        `refused to load global '${short(`${module}.${name}`)}': it is not on the allow-list of a weights file (nothing was executed)${this.#o.refusalHint ? `; ${this.#o.refusalHint}` : ""}`,
      );
    }
    return new PickleGlobal(module, name, h);
  }

  #call(fn: PickleValue, args: PickleValue, op: string): PickleValue {
    if (!(fn instanceof PickleGlobal))
      this.#fail(`${op} of a ${describe(fn)} is not allowed (only allow-listed globals can be called)`);
    const name = short(fn.qualifiedName);
    if (!(args instanceof PickleTuple))
      this.#fail(`${op} of '${name}' with ${describe(args)} arguments, expected a tuple`);
    if (!fn.handler.call) this.#fail(`refused to call '${name}': it may be referred to but not called`);
    try {
      return fn.handler.call(args.items);
    } catch (e) {
      this.#fail(`${name}: ${short(e instanceof Error ? e.message : String(e))}`);
    }
  }

  #setItems(d: PickleValue, items: PickleValue[]): void {
    if (!(d instanceof PickleDict)) this.#fail(`SETITEM on a ${describe(d)}, expected a dict`);
    if (items.length % 2 !== 0) this.#fail("SETITEMS with an odd number of items (a key without a value)");
    this.#count(items.length / 2);
    for (let i = 0; i < items.length; i += 2) d.entries.set(items[i] as PickleValue, items[i + 1] as PickleValue);
  }

  #append(l: PickleValue, items: PickleValue[]): void {
    if (!Array.isArray(l)) this.#fail(`APPEND on a ${describe(l)}, expected a list`);
    this.#count(items.length);
    // A loop, not push(...items): spreading a million items would overflow the call stack.
    for (const v of items) l.push(v);
  }

  run(): PickleValue {
    for (;;) {
      if (++this.#ops > this.#limits.maxOps) this.#fail(`the pickle runs more than ${this.#limits.maxOps} opcodes`);
      const op = this.#u8();
      switch (op) {
        case 0x80: // PROTO
          if (this.#u8() > 5) this.#fail("pickle protocol above 5 is not supported");
          break;
        case 0x95: // FRAME: a length prefix only
          this.#u64();
          break;
        case 0x2e: // STOP
          return this.#pop();
        case 0x28: // MARK
          this.#mark();
          break;
        case 0x7d: // EMPTY_DICT
          this.#pushBuilt(new PickleDict());
          break;
        case 0x5d: // EMPTY_LIST
          this.#pushBuilt([]);
          break;
        case 0x29: // EMPTY_TUPLE
          this.#pushBuilt(new PickleTuple([]));
          break;
        case 0x74: {
          // TUPLE
          const items = this.#popMark();
          this.#pushBuilt(new PickleTuple(items), items.length);
          break;
        }
        case 0x85: // TUPLE1
          this.#pushBuilt(new PickleTuple([this.#pop()]), 1);
          break;
        case 0x86: {
          // TUPLE2
          const b = this.#pop();
          this.#pushBuilt(new PickleTuple([this.#pop(), b]), 2);
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.#pop();
          const b = this.#pop();
          this.#pushBuilt(new PickleTuple([this.#pop(), b, c]), 3);
          break;
        }
        case 0x6c: {
          // LIST
          const items = this.#popMark();
          this.#pushBuilt(items, items.length);
          break;
        }
        case 0x64: {
          // DICT
          const items = this.#popMark();
          const d = new PickleDict();
          this.#setItems(d, items);
          this.#pushBuilt(d);
          break;
        }
        case 0x8f: // EMPTY_SET (kept as a list)
          this.#pushBuilt([]);
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.#popMark();
          this.#append(this.#top(), items);
          break;
        }
        case 0x91: {
          // FROZENSET
          const items = this.#popMark();
          this.#pushBuilt(items, items.length);
          break;
        }
        case 0x58: // BINUNICODE
          this.#push(this.#utf8(this.#u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.#push(this.#utf8(this.#u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.#push(this.#utf8(this.#u64()));
          break;
        case 0x55: // SHORT_BINSTRING (Python 2 str)
          this.#push(new TextDecoder("latin1").decode(this.#bytes(this.#u8())));
          break;
        case 0x54: // BINSTRING
          this.#push(new TextDecoder("latin1").decode(this.#bytes(this.#u32())));
          break;
        case 0x43: // SHORT_BINBYTES
          this.#pushBuilt(this.#bytes(this.#u8()));
          break;
        case 0x42: // BINBYTES
          this.#pushBuilt(this.#bytes(this.#u32()));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.#pushBuilt(this.#bytes(this.#u64()));
          break;
        case 0x4a: // BININT
          this.#push(this.#i32());
          break;
        case 0x4b: // BININT1
          this.#push(this.#u8());
          break;
        case 0x4d: // BININT2
          this.#push(this.#u16());
          break;
        case 0x8a: // LONG1
          this.#push(this.#long(this.#u8()));
          break;
        case 0x8b: {
          // LONG4
          const n = this.#i32();
          if (n < 0) this.#fail("negative LONG4 length");
          this.#push(this.#long(n));
          break;
        }
        case 0x47: // BINFLOAT (big-endian)
          this.#push(this.#v.getFloat64(this.#need(8), false));
          break;
        case 0x88: // NEWTRUE
          this.#push(true);
          break;
        case 0x89: // NEWFALSE
          this.#push(false);
          break;
        case 0x4e: // NONE
          this.#push(null);
          break;
        case 0x63: {
          // GLOBAL "module\nname\n"
          const module = this.#line();
          this.#pushBuilt(this.#global(module, this.#line()));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.#pop();
          const module = this.#pop();
          if (typeof module !== "string" || typeof name !== "string") this.#fail("STACK_GLOBAL needs two strings");
          this.#pushBuilt(this.#global(module, name));
          break;
        }
        case 0x71: // BINPUT
          this.#memoize(this.#u8(), this.#top());
          break;
        case 0x72: // LONG_BINPUT
          this.#memoize(this.#u32(), this.#top());
          break;
        case 0x94: // MEMOIZE
          this.#memoize(this.#memo.size, this.#top());
          break;
        case 0x70: // PUT (text)
          this.#memoize(this.#textIndex(), this.#top());
          break;
        case 0x68: // BINGET
          this.#push(this.#get(this.#u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.#push(this.#get(this.#u32()));
          break;
        case 0x67: // GET (text)
          this.#push(this.#get(this.#textIndex()));
          break;
        case 0x52: {
          // REDUCE
          const args = this.#pop();
          const fn = this.#pop();
          this.#pushBuilt(this.#call(fn, args, "REDUCE"));
          break;
        }
        case 0x81: {
          // NEWOBJ: cls.__new__(cls, *args), treated as a call to the allow-listed class
          const args = this.#pop();
          const cls = this.#pop();
          this.#pushBuilt(this.#call(cls, args, "NEWOBJ"));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.#pop();
          const obj = this.#top();
          if (obj instanceof PickleObject) {
            try {
              obj.build(state);
            } catch (e) {
              this.#fail(short(e instanceof Error ? e.message : String(e)));
            }
          }
          // An OrderedDict's state is its instance __dict__ (state_dict's `_metadata`): nothing to run.
          else if (!(obj instanceof PickleDict))
            this.#fail(`BUILD (setting state) on a ${describe(obj)} is not allowed`);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = this.#pop();
          const k = this.#pop();
          this.#setItems(this.#top(), [k, v]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.#popMark();
          this.#setItems(this.#top(), items);
          break;
        }
        case 0x61: {
          // APPEND
          const v = this.#pop();
          this.#append(this.#top(), [v]);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.#popMark();
          this.#append(this.#top(), items);
          break;
        }
        case 0x51: // BINPERSID
          this.#pushBuilt(this.#persistent(this.#pop()));
          break;
        case 0x50: // PERSID (text)
          this.#pushBuilt(this.#persistent(this.#line()));
          break;
        case 0x30: {
          // POP (a MARK too, as Python's unpickler does)
          const v = this.#stack.pop();
          if (v === undefined) this.#fail("stack underflow");
          if (v === MARK) this.#marks--;
          break;
        }
        case 0x31: // POP_MARK
          this.#popMark();
          break;
        case 0x32: // DUP
          this.#push(this.#top());
          break;
        case 0x69: {
          // INST "module\nname\n": instantiates a class from the stack; refused by name.
          const module = this.#line();
          this.#fail(
            `refused to instantiate '${short(`${module}.${this.#line()}`)}' (INST): not allowed in a weights file (nothing was executed)`,
          );
          break;
        }
        case 0x6f: // OBJ
        case 0x92: // NEWOBJ_EX
          this.#fail(
            `opcode 0x${op.toString(16)} (object construction with keyword arguments) is not allowed in a weights file`,
          );
          break;
        default:
          this.#fail(
            `unsupported pickle opcode 0x${op.toString(16)} at offset ${this.#at - 1} (a weights file uses protocols 2 to 5)`,
          );
      }
    }
  }

  #long(n: number): bigint | number {
    // Building the value byte by byte costs time quadratic in n.
    if (n > MAX_LONG_BYTES)
      this.#fail(`an integer of ${n} bytes (more than ${MAX_LONG_BYTES}) is not a weights file's`);
    const bytes = this.#bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i] as number);
    if ((bytes[n - 1] as number) & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  /** The index of a text PUT/GET: decimal digits only. */
  #textIndex(): number {
    const line = this.#line();
    if (!/^\d{1,15}$/.test(line)) this.#fail("a text memo index must be a decimal integer");
    return Number(line);
  }

  #get(i: number): PickleValue {
    const v = this.#memo.get(i);
    if (v === undefined) this.#fail(`memo entry ${i} is not set`);
    return v;
  }

  #persistent(pid: PickleValue): PickleValue {
    if (!this.#o.persistentLoad) this.#fail("persistent ids are not allowed here");
    try {
      return this.#o.persistentLoad(pid);
    } catch (e) {
      this.#fail(`persistent id: ${short(e instanceof Error ? e.message : String(e))}`);
    }
  }
}

/** A short description of a value's Python type, for messages. */
export function describe(v: PickleValue): string {
  if (v === null) return "None";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "bigint") return "int";
  if (typeof v === "string") return "str";
  if (v instanceof Uint8Array) return "bytes";
  if (Array.isArray(v)) return "list";
  if (v instanceof PickleTuple) return "tuple";
  if (v instanceof PickleDict) return "dict";
  if (v instanceof PickleGlobal) return `global ${short(v.qualifiedName)}`;
  return v.kind;
}
