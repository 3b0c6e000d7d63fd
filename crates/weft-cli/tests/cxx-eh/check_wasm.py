#!/usr/bin/env python3
"""Structural check of the modules build.sh makes, without any engine.

    check_wasm.py legacy|exnref MODULE.wasm [-v]

Decodes every function body (the instruction set clang emits for these
guests: MVP, sign-ext, non-trapping float-to-int, bulk memory, reference
types, multi-value and exception handling; SIMD and threads are rejected) and
checks that the module:
  - defines exactly one tag, of type (i32) -> (), and imports none;
  - imports only functions of wasi_snapshot_preview1;
  - uses the exception instructions of its encoding and none of the other's:
      legacy: try 0x06, catch 0x07, throw 0x08, rethrow 0x09, delegate 0x18,
              catch_all 0x19
      exnref: try_table 0x1f, throw 0x08, throw_ref 0x0a
Prints a one-line summary (all counts and imports with -v); exits 1 on a
failed check, 2 on a module it cannot decode.
"""
import sys

VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
            0x70: "funcref", 0x6F: "externref", 0x69: "exnref"}

NAMES = {0x06: "try", 0x07: "catch", 0x08: "throw", 0x09: "rethrow", 0x0A: "throw_ref",
         0x18: "delegate", 0x19: "catch_all", 0x1F: "try_table"}


class Reader:
    def __init__(self, data, pos=0, end=None):
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def byte(self):
        if self.pos >= self.end:
            raise ValueError("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self):
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def sleb(self):
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result

    def bytes(self, n):
        if self.pos + n > self.end:
            raise ValueError("unexpected end")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def name(self):
        return self.bytes(self.uleb()).decode()

    def valtype(self):
        b = self.byte()
        if b in VALTYPES:
            return VALTYPES[b]
        if b in (0x63, 0x64):  # (ref null ht) / (ref ht)
            self.heaptype()
            return "ref"
        raise ValueError("unknown value type 0x%02x" % b)

    def heaptype(self):
        b = self.data[self.pos]
        if 0x60 <= b <= 0x7F or b == 0x69 or b == 0x74:
            self.pos += 1
        else:
            self.sleb()

    def blocktype(self):
        b = self.data[self.pos]
        if b == 0x40 or b in VALTYPES:
            self.pos += 1
        elif b in (0x63, 0x64):
            self.valtype()
        else:
            self.sleb()  # type index (s33)


def decode_body(r, counts):
    n = r.uleb()
    for _ in range(n):
        r.uleb()
        r.valtype()
    depth = 1
    while depth:
        op = r.byte()
        counts[op] = counts.get(op, 0) + 1
        if op in (0x02, 0x03, 0x04, 0x06):  # block loop if try
            r.blocktype()
            depth += 1
        elif op == 0x1F:  # try_table
            r.blocktype()
            for _ in range(r.uleb()):
                kind = r.byte()
                if kind in (0x00, 0x01):
                    r.uleb()  # tag
                elif kind not in (0x02, 0x03):
                    raise ValueError("bad try_table catch kind %d" % kind)
                r.uleb()  # label
            depth += 1
        elif op == 0x0B:  # end
            depth -= 1
        elif op == 0x18:  # delegate ends the try
            r.uleb()
            depth -= 1
        elif op in (0x00, 0x01, 0x05, 0x0A, 0x0F, 0x19, 0x1A, 0x1B, 0xD1, 0xD3, 0xD4):
            pass
        elif op in (0x07, 0x08, 0x09, 0x0C, 0x0D, 0x10, 0x12, 0x20, 0x21, 0x22, 0x23,
                    0x24, 0x25, 0x26, 0xD2, 0xD5, 0xD6):
            r.uleb()
        elif op == 0x0E:  # br_table
            for _ in range(r.uleb() + 1):
                r.uleb()
        elif op in (0x11, 0x13):  # call_indirect, return_call_indirect
            r.uleb()
            r.uleb()
        elif op == 0x1C:  # select t*
            for _ in range(r.uleb()):
                r.valtype()
        elif 0x28 <= op <= 0x3E:  # loads and stores
            align = r.uleb()
            if align & 0x40:
                r.uleb()  # memory index
            r.uleb()
        elif op in (0x3F, 0x40):
            r.uleb()
        elif op in (0x41, 0x42):
            r.sleb()
        elif op == 0x43:
            r.bytes(4)
        elif op == 0x44:
            r.bytes(8)
        elif 0x45 <= op <= 0xC4:
            pass
        elif op == 0xD0:  # ref.null
            r.heaptype()
        elif op == 0xFC:
            sub = r.uleb()
            counts[0xFC00 + sub] = counts.get(0xFC00 + sub, 0) + 1
            if sub <= 7:
                pass
            elif sub in (8, 12, 14):  # memory.init, table.init, table.copy
                r.uleb()
                r.uleb()
            elif sub in (9, 11, 13, 15, 16, 17):
                r.uleb()
            elif sub == 10:  # memory.copy
                r.uleb()
                r.uleb()
            else:
                raise ValueError("unknown 0xfc %d" % sub)
        else:
            raise ValueError("unexpected opcode 0x%02x at %d" % (op, r.pos - 1))
    if r.pos != r.end:
        raise ValueError("function body has trailing bytes")


def parse(data):
    if data[:8] != b"\0asm\1\0\0\0":
        raise ValueError("not a wasm module")
    r = Reader(data, 8)
    types, imports, tags, counts = [], [], [], {}
    while r.pos < len(data):
        sid = r.byte()
        size = r.uleb()
        s = Reader(data, r.pos, r.pos + size)
        r.pos += size
        if sid == 1:
            for _ in range(s.uleb()):
                if s.byte() != 0x60:
                    raise ValueError("non-function type")
                params = [s.valtype() for _ in range(s.uleb())]
                results = [s.valtype() for _ in range(s.uleb())]
                types.append((params, results))
        elif sid == 2:
            for _ in range(s.uleb()):
                mod, name, kind = s.name(), s.name(), s.byte()
                if kind == 0:
                    s.uleb()
                elif kind == 1:
                    s.valtype()
                    flags = s.uleb()
                    s.uleb()
                    if flags & 1:
                        s.uleb()
                elif kind == 2:
                    flags = s.uleb()
                    s.uleb()
                    if flags & 1:
                        s.uleb()
                elif kind == 3:
                    s.valtype()
                    s.byte()
                elif kind == 4:
                    s.byte()
                    s.uleb()
                imports.append((mod, name, "func table memory global tag".split()[kind]))
        elif sid == 13:
            for _ in range(s.uleb()):
                if s.byte() != 0:
                    raise ValueError("tag attribute")
                tags.append(types[s.uleb()])
        elif sid == 10:
            for _ in range(s.uleb()):
                size = s.uleb()
                decode_body(Reader(data, s.pos, s.pos + size), counts)
                s.pos += size
    return types, imports, tags, counts


def main():
    verbose = "-v" in sys.argv
    args = [a for a in sys.argv[1:] if a != "-v"]
    if len(args) != 2 or args[0] not in ("legacy", "exnref"):
        print(__doc__, file=sys.stderr)
        return 2
    encoding, path = args
    try:
        types, imports, tags, counts = parse(open(path, "rb").read())
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        print("%s: cannot decode: %s" % (path, e))
        return 2
    errors = []
    if tags != [(["i32"], [])]:
        errors.append("expected one defined tag (i32) -> (), found %r" % tags)
    for mod, name, kind in imports:
        if mod != "wasi_snapshot_preview1" or kind != "func":
            errors.append("unexpected import %s.%s (%s)" % (mod, name, kind))
    legacy_ops = (0x06, 0x07, 0x09, 0x18, 0x19)
    exnref_ops = (0x1F, 0x0A)
    want, forbid = (legacy_ops, exnref_ops) if encoding == "legacy" else (exnref_ops, legacy_ops)
    for op in want + (0x08,):
        if not counts.get(op):
            errors.append("no %s (0x%02x)" % (NAMES[op], op))
    for op in forbid:
        if counts.get(op):
            errors.append("%d %s (0x%02x) in a %s module" % (counts[op], NAMES[op], op, encoding))
    eh = ", ".join("%s=%d" % (NAMES[op], counts[op]) for op in sorted(NAMES) if counts.get(op))
    print("%s: %s: %s" % (path, encoding, eh))
    if verbose:
        print("  imports: " + ", ".join("%s.%s" % (m, n) for m, n, _ in imports))
        fc = sorted((k - 0xFC00, v) for k, v in counts.items() if k >= 0xFC00)
        print("  0xfc ops: %s" % fc)
    for e in errors:
        print("  FAIL: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
