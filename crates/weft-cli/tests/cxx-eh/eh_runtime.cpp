// A minimal C++ exception-handling runtime for WebAssembly exception
// handling, written for Weft's tests. Debian's wasm32 libc++abi is built
// without exceptions (it has no __cxa_throw, no personality, no libunwind),
// so this file provides exactly what clang's -fwasm-exceptions lowering calls:
//
//   __cxa_allocate_exception / __cxa_free_exception / __cxa_throw
//   __cxa_begin_catch / __cxa_end_catch / __cxa_rethrow
//   __cxa_get_exception_ptr / __cxa_current_exception_type
//   __cxa_uncaught_exception(s)   (std::uncaught_exceptions uses them)
//   exception_ptr refcount stubs  (see the end of the file)
//   _Unwind_CallPersonality       (called in every catch pad with typed
//                                  clauses; it reads the LSDA and writes the
//                                  selector into __wasm_lpad_context)
//   __gxx_wasm_personality_v0     (named as the personality; never called)
//   __wasm_lpad_context           (the global the catch pads write/read)
//   the __cpp_exception tag       (param i32: the thrown pointer)
//
// std::terminate, std::type_info and the __cxxabiv1 type_info vtables come
// from the packaged libc++abi (linked through libc++.a / libc++abi.a).
//
// Protocol (ours, the compiler only passes the value through): the value
// thrown with the __cpp_exception tag is a pointer to a Header that sits
// right before the exception object.
//
// Type matching: exact type, catch(...), and a derived class caught as a
// public base (single, multiple and virtual inheritance, walking the Itanium
// ABI's __si_class_type_info / __vmi_class_type_info), and one level of
// pointer conversions (T* as const T*, as void*, Derived* as Base*). Not
// implemented: multi-level pointer qualification, pointers to members,
// nullptr_t caught as a pointer, std::exception_ptr, ambiguity checks. It is
// test support, not a libc++abi.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <typeinfo>

#if !defined(__wasm__)
#error "eh_runtime.cpp is only for wasm32 builds"
#endif

// The exception tag used by clang for C++ exceptions: one i32 payload.
__asm__(".globl __cpp_exception\n"
        ".tagtype __cpp_exception i32\n"
        "__cpp_exception:\n");

// The vtables of libc++abi's RTTI classes: a type_info's vptr tells its kind.
extern char class_ti_vtable[] __asm__("_ZTVN10__cxxabiv117__class_type_infoE");
extern char si_ti_vtable[] __asm__("_ZTVN10__cxxabiv120__si_class_type_infoE");
extern char vmi_ti_vtable[] __asm__("_ZTVN10__cxxabiv121__vmi_class_type_infoE");
extern char pointer_ti_vtable[] __asm__("_ZTVN10__cxxabiv119__pointer_type_infoE");
extern char function_ti_vtable[] __asm__("_ZTVN10__cxxabiv120__function_type_infoE");

namespace {

// WebAssembly's C++ ABI makes destructors return `this`, so the destructor
// pointer passed to __cxa_throw must be called with that signature: calling
// it as void(*)(void*) traps with an indirect call signature mismatch.
typedef void *(*Destructor)(void *);

struct alignas(16) Header {
  const std::type_info *type;
  Destructor dtor;
  Header *next_caught;  // the stack of exceptions currently being handled
  int handlers;         // active catch clauses; negated while rethrown
  void *adjusted;       // the object as seen by the matched catch clause
};

static_assert(sizeof(Header) % 16 == 0, "the object after the header must stay 16-aligned");

Header *caught_stack = nullptr;
int uncaught_count = 0;

inline void *object_of(Header *h) { return h + 1; }
inline Header *header_of(void *obj) { return static_cast<Header *>(obj) - 1; }

[[noreturn]] void fail() { std::terminate(); }

// ---- LSDA reading -------------------------------------------------------

uintptr_t read_uleb(const uint8_t *&p) {
  uintptr_t result = 0;
  unsigned shift = 0;
  uint8_t byte;
  do {
    byte = *p++;
    result |= uintptr_t(byte & 0x7f) << shift;
    shift += 7;
  } while (byte & 0x80);
  return result;
}

intptr_t read_sleb(const uint8_t *&p) {
  uintptr_t result = 0;
  unsigned shift = 0;
  uint8_t byte;
  do {
    byte = *p++;
    result |= uintptr_t(byte & 0x7f) << shift;
    shift += 7;
  } while (byte & 0x80);
  if (shift < 8 * sizeof(result) && (byte & 0x40))
    result |= ~uintptr_t(0) << shift;
  return intptr_t(result);
}

enum : uint8_t {
  DW_EH_PE_absptr = 0x00,
  DW_EH_PE_uleb128 = 0x01,
  DW_EH_PE_udata4 = 0x03,
  DW_EH_PE_sdata4 = 0x0b,
  DW_EH_PE_omit = 0xff,
};

// Reads a value with a pointer encoding the Wasm LSDA can use (no pc- or
// data-relative forms: wasm has no code addresses, and we link statically).
uintptr_t read_encoded(const uint8_t *&p, uint8_t encoding) {
  uintptr_t v;
  switch (encoding & 0x0f) {
  case DW_EH_PE_absptr:
  case DW_EH_PE_udata4:
  case DW_EH_PE_sdata4: {
    uint32_t x;
    std::memcpy(&x, p, 4);
    p += 4;
    v = x;
    break;
  }
  case DW_EH_PE_uleb128:
    v = read_uleb(p);
    break;
  default:
    fail();
  }
  if ((encoding & 0x70) != 0) // pcrel, datarel, ... never emitted for wasm32
    fail();
  if (encoding & 0x80) // indirect
    v = *reinterpret_cast<const uintptr_t *>(v);
  return v;
}

size_t encoded_size(uint8_t encoding) {
  switch (encoding & 0x0f) {
  case DW_EH_PE_absptr:
  case DW_EH_PE_udata4:
  case DW_EH_PE_sdata4:
    return 4;
  default:
    fail();
  }
}

// ---- type matching (Itanium C++ ABI RTTI layout) --------------------------

struct SiClassTypeInfo { // abi::__si_class_type_info
  void *vptr;
  const char *name;
  const std::type_info *base;
};

struct BaseClassInfo { // abi::__base_class_type_info
  const std::type_info *base;
  long offset_flags; // offset << 8 | flags
};

struct VmiClassTypeInfo { // abi::__vmi_class_type_info
  void *vptr;
  const char *name;
  unsigned flags;
  unsigned base_count;
  BaseClassInfo bases[1];
};

enum { BASE_VIRTUAL = 0x1, BASE_PUBLIC = 0x2 };

struct PointerTypeInfo { // abi::__pointer_type_info
  void *vptr;
  const char *name;
  unsigned flags; // cv-qualification of the pointee
  const std::type_info *pointee;
};

enum { QUAL_CONST = 0x1, QUAL_VOLATILE = 0x2, QUAL_RESTRICT = 0x4 };

enum Kind { OTHER, CLASS, SI_CLASS, VMI_CLASS, POINTER, FUNCTION };

Kind kind_of(const std::type_info *t) {
  // A vptr points two slots (offset-to-top, typeinfo) into the vtable.
  const char *vptr = *reinterpret_cast<char *const *>(t);
  if (vptr == class_ti_vtable + 2 * sizeof(void *))
    return CLASS;
  if (vptr == si_ti_vtable + 2 * sizeof(void *))
    return SI_CLASS;
  if (vptr == vmi_ti_vtable + 2 * sizeof(void *))
    return VMI_CLASS;
  if (vptr == pointer_ti_vtable + 2 * sizeof(void *))
    return POINTER;
  if (vptr == function_ti_vtable + 2 * sizeof(void *))
    return FUNCTION;
  return OTHER;
}

bool same_type(const std::type_info *a, const std::type_info *b) {
  return a == b || *a == *b;
}

// Searches the public bases of `obj` (of dynamic type `type`) for `target`;
// on success *out is the base subobject's address (null if obj is null).
// The first public path wins (no ambiguity check: the tests do not throw
// ambiguous hierarchies).
bool find_public_base(void *obj, const std::type_info *type, const std::type_info *target, void **out) {
  if (same_type(type, target)) {
    *out = obj;
    return true;
  }
  switch (kind_of(type)) {
  case SI_CLASS: {
    auto *si = reinterpret_cast<const SiClassTypeInfo *>(type);
    return find_public_base(obj, si->base, target, out); // at offset 0, public
  }
  case VMI_CLASS: {
    auto *vmi = reinterpret_cast<const VmiClassTypeInfo *>(type);
    for (unsigned i = 0; i < vmi->base_count; i++) {
      const BaseClassInfo &b = vmi->bases[i];
      if (!(b.offset_flags & BASE_PUBLIC))
        continue;
      char *base = nullptr;
      if (obj != nullptr) {
        long offset = b.offset_flags >> 8;
        if (b.offset_flags & BASE_VIRTUAL) {
          // The vtable holds the virtual base's offset at `offset` bytes.
          const char *vtable = *static_cast<char **>(obj);
          offset = *reinterpret_cast<const long *>(vtable + offset);
        }
        base = static_cast<char *>(obj) + offset;
      }
      if (find_public_base(base, b.base, target, out))
        return true;
    }
    return false;
  }
  default:
    return false;
  }
}

// Can a handler for `catch_type` catch an exception object of type `thrown`
// at `obj`? On success *adjusted is what __cxa_begin_catch returns to the
// handler: the (base sub)object's address, or for a pointer handler the
// pointer value itself (clang's handler code uses it as the caught pointer).
bool can_catch(const std::type_info *catch_type, Header *h, void **adjusted) {
  void *obj = object_of(h);
  if (catch_type == nullptr) { // catch (...)
    *adjusted = obj;
    return true;
  }
  Kind catch_kind = kind_of(catch_type);
  if (catch_kind == POINTER && kind_of(h->type) == POINTER) {
    // T* caught as T*, as a more cv-qualified T*, as void*, or as Base* for
    // a public base class Base of T (one level of pointers only).
    auto *to = reinterpret_cast<const PointerTypeInfo *>(catch_type);
    auto *from = reinterpret_cast<const PointerTypeInfo *>(h->type);
    void *pointer = *static_cast<void **>(obj);
    unsigned quals = QUAL_CONST | QUAL_VOLATILE | QUAL_RESTRICT;
    if ((from->flags & quals & ~to->flags) != 0)
      return false;
    if (same_type(to->pointee, from->pointee) ||
        (same_type(to->pointee, &typeid(void)) && kind_of(from->pointee) != FUNCTION)) {
      *adjusted = pointer;
      return true;
    }
    return find_public_base(pointer, from->pointee, to->pointee, adjusted);
  }
  if (same_type(catch_type, h->type)) {
    *adjusted = obj;
    return true;
  }
  return find_public_base(obj, h->type, catch_type, adjusted);
}

} // namespace

// ---- the landing-pad context written by compiled catch pads ----------------

// Layout fixed by LLVM's WasmEHPrepare: { i32 lpad_index, ptr lsda, i32 selector }.
// LLVM marks it thread-local and strips that without the atomics feature;
// declaring it thread_local here keeps both sides the same in either case.
struct LandingPadContext {
  uintptr_t lpad_index;
  const uint8_t *lsda;
  uintptr_t selector;
};

extern "C" {

thread_local LandingPadContext __wasm_lpad_context;

// Called with the thrown value in a catch pad that has typed catch clauses,
// after the pad stored its index and its function's LSDA in
// __wasm_lpad_context. Sets __wasm_lpad_context.selector to the type-table
// index of the first clause that matches (the value llvm.eh.typeid.for gives
// that clause's type), or 0 if none does (the pad then rethrows).
//
// The Wasm LSDA, as clang emits it:
//   u8 LPStart encoding (0xff: omitted)
//   u8 TType encoding (0: absptr, 4 bytes on wasm32), uleb128 offset from
//      the end of this field to the end of the type table (TTBase)
//   u8 call-site encoding (1: uleb128), uleb128 call-site table length
//   call-site table: per landing pad, uleb128 pad index, uleb128 action
//      (1 + offset into the action table, 0 for none)
//   action table: records of sleb128 type filter, sleb128 offset (from this
//      field) to the next record, 0 ending the chain
//   type table, indexed backwards from TTBase by the filter (1-based)
int _Unwind_CallPersonality(void *exn) {
  LandingPadContext &ctx = __wasm_lpad_context;
  ctx.selector = 0;
  Header *h = static_cast<Header *>(exn);
  const uint8_t *p = ctx.lsda;
  if (h == nullptr || p == nullptr)
    return 8; // _URC_CONTINUE_UNWIND

  uint8_t lpstart_encoding = *p++;
  if (lpstart_encoding != DW_EH_PE_omit)
    (void)read_encoded(p, lpstart_encoding);
  uint8_t ttype_encoding = *p++;
  const uint8_t *ttbase = nullptr;
  if (ttype_encoding != DW_EH_PE_omit) {
    uintptr_t off = read_uleb(p);
    ttbase = p + off;
  }
  uint8_t callsite_encoding = *p++;
  uintptr_t callsite_len = read_uleb(p);
  const uint8_t *callsite_end = p + callsite_len;
  const uint8_t *actions = callsite_end;

  while (p < callsite_end) {
    uintptr_t index = read_encoded(p, callsite_encoding);
    uintptr_t action = read_uleb(p);
    if (index != ctx.lpad_index)
      continue;
    if (action == 0)
      return 8; // cleanup only
    const uint8_t *a = actions + (action - 1);
    for (;;) {
      intptr_t filter = read_sleb(a);
      const uint8_t *next_field = a;
      intptr_t next = read_sleb(a);
      if (filter > 0) {
        if (ttbase == nullptr)
          fail();
        size_t size = encoded_size(ttype_encoding);
        const uint8_t *entry = ttbase - size_t(filter) * size;
        auto *catch_type = reinterpret_cast<const std::type_info *>(read_encoded(entry, ttype_encoding));
        void *adjusted;
        if (can_catch(catch_type, h, &adjusted)) {
          h->adjusted = adjusted;
          ctx.selector = uintptr_t(filter);
          return 6; // _URC_HANDLER_FOUND
        }
      }
      // filter == 0: cleanup; filter < 0: dynamic exception specification
      // (gone from C++17; clang lowers noexcept without one): neither
      // selects a handler.
      if (next == 0)
        break;
      a = next_field + next;
    }
    return 8;
  }
  return 8;
}

// Named as every function's personality; the Wasm lowering never calls it
// (catch pads call _Unwind_CallPersonality instead).
int __gxx_wasm_personality_v0(...) { return 8; }

void *__cxa_allocate_exception(size_t size) noexcept {
  void *mem = std::aligned_alloc(alignof(Header), (sizeof(Header) + size + 15) & ~size_t(15));
  if (mem == nullptr)
    fail();
  std::memset(mem, 0, sizeof(Header) + size);
  return object_of(static_cast<Header *>(mem));
}

void __cxa_free_exception(void *obj) noexcept { std::free(header_of(obj)); }

[[noreturn]] void __cxa_throw(void *obj, std::type_info *type, Destructor dtor) {
  Header *h = header_of(obj);
  h->type = type;
  h->dtor = dtor;
  h->handlers = 0;
  h->adjusted = obj;
  uncaught_count++;
  __builtin_wasm_throw(0, h);
}

void *__cxa_get_exception_ptr(void *exn) noexcept {
  Header *h = static_cast<Header *>(exn);
  return h ? h->adjusted : nullptr;
}

void *__cxa_begin_catch(void *exn) noexcept {
  Header *h = static_cast<Header *>(exn);
  if (h == nullptr) // a foreign exception caught by catch (...)
    return nullptr;
  h->handlers = (h->handlers < 0 ? -h->handlers : h->handlers) + 1;
  if (h != caught_stack) {
    h->next_caught = caught_stack;
    caught_stack = h;
  }
  uncaught_count--;
  return h->adjusted;
}

void __cxa_end_catch() {
  Header *h = caught_stack;
  if (h == nullptr)
    return;
  if (h->handlers < 0) {
    // Rethrown: leave it alive for the next handler.
    if (++h->handlers == 0)
      caught_stack = h->next_caught;
    return;
  }
  if (--h->handlers == 0) {
    caught_stack = h->next_caught;
    void *obj = object_of(h);
    if (h->dtor)
      h->dtor(obj);
    std::free(h);
  }
}

[[noreturn]] void __cxa_rethrow() {
  Header *h = caught_stack;
  if (h == nullptr)
    fail(); // `throw;` with no exception being handled
  h->handlers = -h->handlers;
  h->adjusted = object_of(h);
  uncaught_count++;
  __builtin_wasm_throw(0, h);
}

std::type_info *__cxa_current_exception_type() {
  return caught_stack ? const_cast<std::type_info *>(caught_stack->type) : nullptr;
}

unsigned int __cxa_uncaught_exceptions() noexcept { return unsigned(uncaught_count); }

bool __cxa_uncaught_exception() noexcept { return uncaught_count != 0; }

// std::exception_ptr is not supported. libc++'s exception.cpp.o (which also
// holds std::uncaught_exceptions) refers to these; defining them keeps the
// archive's no-exceptions versions (which would clash with the functions
// above) out of the link.
void __cxa_increment_exception_refcount(void *) noexcept {}
void __cxa_decrement_exception_refcount(void *) noexcept {}
void *__cxa_current_primary_exception() noexcept { return nullptr; }
[[noreturn]] void __cxa_rethrow_primary_exception(void *) { fail(); }

} // extern "C"
