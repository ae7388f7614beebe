// A restricted unpickler (protocols 2 to 5) for model files, in the spirit of PyTorch's
// `torch.load(weights_only=True)`. It interprets the opcodes a state_dict uses and never runs
// code: a pickle names a global (module + name) and asks to call it, and here every global must
// be on the caller's allow-list, which says what a call to it builds. Everything else is refused
// with a message naming the global, because a model file that runs code on the defender's
// machine is exactly how a backdoored model would attack its defender.

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
    throw new Error(`pickle: BUILD (setting state) on ${this.kind} is not allowed`);
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
}

const MARK = Symbol("mark");
type StackItem = PickleValue | typeof MARK;

/** Interprets `bytes` as one pickle and returns the value it builds; throws on anything not allowed. */
export function unpickle(bytes: Uint8Array, o: UnpickleOptions): PickleValue {
  return new Unpickler(bytes, o).run();
}

class Unpickler {
  readonly #b: Uint8Array;
  readonly #v: DataView;
  readonly #o: UnpickleOptions;
  #at = 0;
  readonly #stack: StackItem[] = [];
  readonly #memo = new Map<number, PickleValue>();

  constructor(bytes: Uint8Array, o: UnpickleOptions) {
    this.#b = bytes;
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#o = o;
  }

  #fail(msg: string): never {
    throw new Error(`${this.#o.source ?? "pickle"}: ${msg}`);
  }

  #need(n: number): number {
    if (n < 0 || this.#at + n > this.#b.length) this.#fail(`truncated pickle (needs ${n} bytes at offset ${this.#at} of ${this.#b.length})`);
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
    return new TextDecoder("utf-8", { fatal: true }).decode(this.#bytes(n));
  }
  #line(): string {
    const end = this.#b.indexOf(0x0a, this.#at);
    if (end < 0) this.#fail("truncated pickle (unterminated text line)");
    const s = new TextDecoder("latin1").decode(this.#b.subarray(this.#at, end));
    this.#at = end + 1;
    return s;
  }

  #push(v: PickleValue): void {
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

  /** Pops everything down to the last MARK. */
  #popMark(): PickleValue[] {
    const i = this.#stack.lastIndexOf(MARK);
    if (i < 0) this.#fail("no MARK on the stack");
    const items = this.#stack.splice(i) as PickleValue[];
    items.shift();
    return items;
  }

  #global(module: string, name: string): PickleGlobal {
    const h = this.#o.resolveGlobal(module, name);
    if (!h) {
      this.#fail(`refused to load global '${module}.${name}': it is not on the allow-list of a weights file (nothing was executed)${this.#o.refusalHint ? `; ${this.#o.refusalHint}` : ""}`);
    }
    return new PickleGlobal(module, name, h);
  }

  #call(fn: PickleValue, args: PickleValue, op: string): PickleValue {
    if (!(fn instanceof PickleGlobal)) this.#fail(`${op} of a ${describe(fn)} is not allowed (only allow-listed globals can be called)`);
    if (!(args instanceof PickleTuple)) this.#fail(`${op} of '${fn.qualifiedName}' with ${describe(args)} arguments, expected a tuple`);
    if (!fn.handler.call) this.#fail(`refused to call '${fn.qualifiedName}': it may be referred to but not called`);
    try {
      return fn.handler.call(args.items);
    } catch (e) {
      this.#fail(`${fn.qualifiedName}: ${(e as Error).message}`);
    }
  }

  #setItem(d: PickleValue, k: PickleValue, v: PickleValue): void {
    if (!(d instanceof PickleDict)) this.#fail(`SETITEM on a ${describe(d)}, expected a dict`);
    d.entries.set(k, v);
  }

  #append(l: PickleValue, v: PickleValue[]): void {
    if (!Array.isArray(l)) this.#fail(`APPEND on a ${describe(l)}, expected a list`);
    l.push(...v);
  }

  run(): PickleValue {
    for (;;) {
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
          this.#stack.push(MARK);
          break;
        case 0x7d: // EMPTY_DICT
          this.#push(new PickleDict());
          break;
        case 0x5d: // EMPTY_LIST
          this.#push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          this.#push(new PickleTuple([]));
          break;
        case 0x74: // TUPLE
          this.#push(new PickleTuple(this.#popMark()));
          break;
        case 0x85: // TUPLE1
          this.#push(new PickleTuple([this.#pop()]));
          break;
        case 0x86: {
          // TUPLE2
          const b = this.#pop();
          this.#push(new PickleTuple([this.#pop(), b]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.#pop();
          const b = this.#pop();
          this.#push(new PickleTuple([this.#pop(), b, c]));
          break;
        }
        case 0x6c: // LIST
          this.#push(this.#popMark());
          break;
        case 0x64: {
          // DICT
          const items = this.#popMark();
          const d = new PickleDict();
          for (let i = 0; i + 1 < items.length; i += 2) d.entries.set(items[i] as PickleValue, items[i + 1] as PickleValue);
          this.#push(d);
          break;
        }
        case 0x8f: // EMPTY_SET (kept as a list)
          this.#push([]);
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.#popMark();
          this.#append(this.#top(), items);
          break;
        }
        case 0x91: // FROZENSET
          this.#push(this.#popMark());
          break;
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
          this.#push(this.#bytes(this.#u8()));
          break;
        case 0x42: // BINBYTES
          this.#push(this.#bytes(this.#u32()));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.#push(this.#bytes(this.#u64()));
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
          this.#push(this.#global(module, this.#line()));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.#pop();
          const module = this.#pop();
          if (typeof module !== "string" || typeof name !== "string") this.#fail("STACK_GLOBAL needs two strings");
          this.#push(this.#global(module, name));
          break;
        }
        case 0x71: // BINPUT
          this.#memo.set(this.#u8(), this.#top());
          break;
        case 0x72: // LONG_BINPUT
          this.#memo.set(this.#u32(), this.#top());
          break;
        case 0x94: // MEMOIZE
          this.#memo.set(this.#memo.size, this.#top());
          break;
        case 0x70: // PUT (text)
          this.#memo.set(Number(this.#line()), this.#top());
          break;
        case 0x68: // BINGET
          this.#push(this.#get(this.#u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.#push(this.#get(this.#u32()));
          break;
        case 0x67: // GET (text)
          this.#push(this.#get(Number(this.#line())));
          break;
        case 0x52: {
          // REDUCE
          const args = this.#pop();
          const fn = this.#pop();
          this.#push(this.#call(fn, args, "REDUCE"));
          break;
        }
        case 0x81: {
          // NEWOBJ: cls.__new__(cls, *args), treated as a call to the allow-listed class
          const args = this.#pop();
          const cls = this.#pop();
          this.#push(this.#call(cls, args, "NEWOBJ"));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.#pop();
          const obj = this.#top();
          if (obj instanceof PickleObject) obj.build(state);
          // An OrderedDict's state is its instance __dict__ (state_dict's `_metadata`): nothing to run.
          else if (!(obj instanceof PickleDict)) this.#fail(`BUILD (setting state) on a ${describe(obj)} is not allowed`);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = this.#pop();
          const k = this.#pop();
          this.#setItem(this.#top(), k, v);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.#popMark();
          const d = this.#top();
          for (let i = 0; i + 1 < items.length; i += 2) this.#setItem(d, items[i] as PickleValue, items[i + 1] as PickleValue);
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
          this.#push(this.#persistent(this.#pop()));
          break;
        case 0x50: // PERSID (text)
          this.#push(this.#persistent(this.#line()));
          break;
        case 0x30: // POP
          if (this.#stack.pop() === undefined) this.#fail("stack underflow");
          break;
        case 0x31: // POP_MARK
          this.#popMark();
          break;
        case 0x32: // DUP
          this.#push(this.#top());
          break;
        case 0x69: {
          // INST "module\nname\n": instantiates a class from the stack; refused by name.
          const module = this.#line();
          this.#fail(`refused to instantiate '${module}.${this.#line()}' (INST): not allowed in a weights file (nothing was executed)`);
          break;
        }
        case 0x6f: // OBJ
        case 0x92: // NEWOBJ_EX
          this.#fail(`opcode 0x${op.toString(16)} (object construction with keyword arguments) is not allowed in a weights file`);
          break;
        default:
          this.#fail(`unsupported pickle opcode 0x${op.toString(16)} at offset ${this.#at - 1} (a weights file uses protocols 2 to 5)`);
      }
    }
  }

  #long(n: number): bigint | number {
    const bytes = this.#bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i] as number);
    if ((bytes[n - 1] as number) & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
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
      this.#fail(`persistent id: ${(e as Error).message}`);
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
  if (v instanceof PickleGlobal) return `global ${v.qualifiedName}`;
  return v.kind;
}
