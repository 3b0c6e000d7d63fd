// C++ exception handling exercised end to end. Built natively (the expected
// output) and for wasm32-wasi with -fwasm-exceptions in both encodings (see
// build.sh); the outputs must be identical. Deterministic: no addresses, no
// time, no environment. Exits 0 when every internal check held, 1 otherwise.

#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>

#define NOINLINE __attribute__((noinline))

static int failures = 0;
static void check(bool ok, const char *what) {
  if (!ok) {
    failures++;
    printf("FAIL: %s\n", what);
  }
}

// Opaque to the optimizer, so throws and recursion are not folded away.
static volatile int opaque_zero = 0;
static NOINLINE int opaque(int x) { return x + opaque_zero; }

// ---- RAII bookkeeping ------------------------------------------------------

static int live_guards = 0;
static int destroyed_guards = 0;

struct Guard {
  int id;
  bool loud;
  explicit Guard(int id, bool loud = false) : id(id), loud(loud) { live_guards++; }
  ~Guard() {
    live_guards--;
    destroyed_guards++;
    if (loud)
      printf("  ~Guard(%d) uncaught=%d\n", id, std::uncaught_exceptions());
  }
};

// ---- exception types ---------------------------------------------------------

static int live_errors = 0;
static int error_copies = 0;

struct Base {
  int code;
  explicit Base(int code) : code(code) { live_errors++; }
  Base(const Base &o) : code(o.code) {
    live_errors++;
    error_copies++;
  }
  virtual ~Base() { live_errors--; }
  virtual const char *name() const { return "Base"; }
};

struct Derived : Base {
  int extra;
  Derived(int code, int extra) : Base(code), extra(extra) {}
  const char *name() const override { return "Derived"; }
};

struct MoreDerived : Derived {
  MoreDerived(int code) : Derived(code, code * 2) {}
  const char *name() const override { return "MoreDerived"; }
};

struct Unrelated {
  int v;
};

class AppError : public std::exception {
  char msg[64];

public:
  explicit AppError(const char *m) { snprintf(msg, sizeof msg, "AppError: %s", m); }
  const char *what() const noexcept override { return msg; }
};

// Multiple inheritance: catching the second base needs a pointer adjustment.
struct Tagged {
  int tag;
  Tagged() : tag(77) {}
  virtual ~Tagged() {}
};
struct Multi : Base, Tagged {
  Multi() : Base(55) {}
  const char *name() const override { return "Multi"; }
};

// Virtual inheritance: the base's offset comes from the vtable.
struct VBase {
  int vb;
  VBase() : vb(31) {}
  virtual ~VBase() {}
};
struct VLeft : virtual VBase {
  int l = 1;
};
struct VRight : virtual VBase {
  int r = 2;
};
struct Diamond : VLeft, VRight {
  int d = 3;
};

// ---- 1. deep recursion -----------------------------------------------------

static NOINLINE int descend(int depth, int bottom) {
  Guard g(depth);
  if (depth == bottom)
    throw Derived(depth, opaque(1000));
  return descend(depth + 1, bottom) + opaque(1); // not a tail call
}

static void test_deep_recursion() {
  printf("deep recursion\n");
  const int depths[] = {1, 50, 150, 200};
  for (int bottom : depths) {
    destroyed_guards = 0;
    try {
      descend(1, bottom);
      check(false, "descend returned");
    } catch (const Base &b) {
      printf("  depth %d: caught %s code=%d, %d guards destroyed, live=%d\n", bottom, b.name(),
             b.code, destroyed_guards, live_guards);
      check(b.code == bottom && destroyed_guards == bottom && live_guards == 0, "deep recursion");
    }
  }
}

// ---- 2. destructors run in order during unwinding -----------------------------

static NOINLINE void level3() {
  Guard g(3, true);
  printf("  level3 throws\n");
  throw 42;
}
static NOINLINE void level2() {
  Guard g(2, true);
  level3();
  printf("  not reached\n");
}
static NOINLINE void level1() {
  Guard a(10, true);
  {
    Guard inner(11, true);
  }
  Guard b(12, true);
  level2();
}

static void test_unwind_order() {
  printf("unwind order\n");
  try {
    level1();
  } catch (int v) {
    printf("  caught int %d, uncaught=%d\n", v, std::uncaught_exceptions());
  }
}

// ---- 3. typed catch clauses --------------------------------------------------

static NOINLINE void throw_kind(int k) {
  switch (opaque(k)) {
  case 0: throw 7;
  case 1: throw Base(1);
  case 2: throw Derived(2, 20);
  case 3: throw MoreDerived(3);
  case 4: throw Unrelated{4};
  case 5: throw AppError("five");
  case 6: throw "a string";
  case 7: throw 7.5;
  case 8: throw std::runtime_error("runtime eight");
  case 9: throw 'c';
  case 10: throw 10L;
  default: break;
  }
}

static const char *classify(int k) {
  try {
    throw_kind(k);
    return "nothing thrown";
  } catch (const MoreDerived &e) {
    return "MoreDerived&";
  } catch (Derived &e) {
    return e.extra == 20 ? "Derived& (extra 20)" : "Derived& (?)";
  } catch (const Base &e) {
    return "Base&";
  } catch (int v) {
    return v == 7 ? "int 7" : "int ?";
  } catch (const std::runtime_error &e) {
    return strcmp(e.what(), "runtime eight") == 0 ? "runtime_error&" : "runtime_error (?)";
  } catch (const std::exception &e) {
    return strcmp(e.what(), "AppError: five") == 0 ? "std::exception& what=AppError: five"
                                                   : "std::exception (?)";
  } catch (const char *s) {
    return strcmp(s, "a string") == 0 ? "const char*" : "const char* (?)";
  } catch (double d) {
    return d == 7.5 ? "double 7.5" : "double ?";
  } catch (long l) {
    return "long";
  } catch (...) {
    return "...";
  }
}

static void test_typed_catch() {
  printf("typed catch\n");
  for (int k = 0; k <= 11; k++)
    printf("  kind %d -> %s\n", k, classify(k));
  check(live_errors == 0, "typed catch leaks");
}

// ---- 4. rethrow --------------------------------------------------------------

static NOINLINE void rethrower(int k) {
  Guard g(100 + k);
  try {
    throw_kind(k);
  } catch (const Base &b) {
    printf("  rethrower saw %s code=%d, rethrowing\n", b.name(), b.code);
    throw; // the same object goes on
  } catch (...) {
    printf("  rethrower saw something else, rethrowing\n");
    throw;
  }
}

static void test_rethrow() {
  printf("rethrow\n");
  int copies_before = error_copies;
  try {
    rethrower(3);
  } catch (Derived &d) {
    printf("  outer caught %s code=%d extra=%d\n", d.name(), d.code, d.extra);
  }
  check(error_copies == copies_before, "rethrow copied the exception");
  try {
    rethrower(0);
  } catch (int v) {
    printf("  outer caught int %d\n", v);
  }
  // Rethrown twice, through two levels of handlers.
  try {
    try {
      try {
        throw AppError("twice");
      } catch (std::exception &) {
        printf("  level A rethrows\n");
        throw;
      }
    } catch (AppError &) {
      printf("  level B rethrows\n");
      throw;
    }
  } catch (const std::exception &e) {
    printf("  level C: %s\n", e.what());
  }
  check(live_errors == 0, "rethrow leaks");
}

// ---- 5. nested try blocks ------------------------------------------------------

static void test_nested() {
  printf("nested try\n");
  // The inner handler does not match: the outer one does.
  try {
    Guard g(200, true);
    try {
      Guard h(201, true);
      throw Base(5);
    } catch (int) {
      printf("  wrong handler\n");
    }
    printf("  not reached\n");
  } catch (Base &b) {
    printf("  outer caught Base code=%d\n", b.code);
  }
  // A new exception thrown and caught inside a handler; then the first one
  // is still the current exception.
  try {
    throw Derived(6, 60);
  } catch (Base &outer) {
    try {
      throw 99;
    } catch (int inner) {
      printf("  inner caught %d inside handler for code=%d\n", inner, outer.code);
    }
    printf("  back in outer handler, code=%d\n", outer.code);
  }
  // A handler that throws a different exception, caught further out.
  try {
    try {
      throw Base(7);
    } catch (Base &b) {
      printf("  translating code=%d to AppError\n", b.code);
      throw AppError("translated");
    }
  } catch (std::exception &e) {
    printf("  caught %s\n", e.what());
  }
  // Exceptions thrown and caught inside a destructor that runs during
  // unwinding of another exception.
  struct CatchingDtor {
    ~CatchingDtor() {
      try {
        throw 'x';
      } catch (char c) {
        printf("  destructor caught its own '%c', uncaught=%d\n", c, std::uncaught_exceptions());
      }
    }
  };
  try {
    CatchingDtor d;
    throw Derived(8, 80);
  } catch (Derived &e) {
    printf("  then caught Derived code=%d\n", e.code);
  }
  check(live_errors == 0, "nested leaks");
}

// ---- 6. through frames with cleanups only ----------------------------------------

static NOINLINE int leaf(int x) {
  if (opaque(x) > 3)
    throw Derived(x, -x);
  return x;
}
static NOINLINE int cleanup_a(int x) {
  Guard g(x);
  return leaf(x) + 1;
}
static NOINLINE int cleanup_b(int x) {
  Guard g1(x), g2(x + 1);
  return cleanup_a(x) * 2;
}
static NOINLINE int no_cleanup(int x) { return cleanup_b(x) + opaque(3); }

struct Thrower {
  virtual int run(int x) = 0;
  virtual ~Thrower() {}
};
struct ThrowerImpl : Thrower {
  int run(int x) override {
    Guard g(x);
    return no_cleanup(x);
  }
};

static void test_cleanups_only() {
  printf("cleanups only\n");
  destroyed_guards = 0;
  int sum = 0;
  for (int i = 0; i < 8; i++) {
    try {
      sum += no_cleanup(i);
    } catch (const Base &b) {
      sum += 1000 * b.code;
    }
  }
  printf("  sum=%d guards destroyed=%d live=%d\n", sum, destroyed_guards, live_guards);
  // Through a virtual call and a function pointer.
  ThrowerImpl impl;
  Thrower *t = &impl;
  int (*fp)(int) = no_cleanup;
  try {
    t->run(9);
  } catch (Derived &d) {
    printf("  via virtual call: code=%d extra=%d\n", d.code, d.extra);
  }
  try {
    fp(opaque(11));
  } catch (Base &b) {
    printf("  via function pointer: code=%d\n", b.code);
  }
  check(live_guards == 0 && live_errors == 0, "cleanups leak");
}

// ---- 7. catch by value, multiple and virtual inheritance ---------------------------

static void test_by_value_and_inheritance() {
  printf("by value and inheritance\n");
  int copies_before = error_copies;
  try {
    throw Derived(12, 120);
  } catch (Base b) { // sliced copy made from the exception object
    printf("  by value: %s code=%d copies=%d\n", b.name(), b.code, error_copies - copies_before);
  }
  try {
    throw Multi();
  } catch (Tagged &t) {
    printf("  Multi caught as Tagged: tag=%d\n", t.tag);
  }
  try {
    throw Multi();
  } catch (Base &b) {
    printf("  Multi caught as Base: %s code=%d\n", b.name(), b.code);
  }
  try {
    throw Diamond();
  } catch (VBase &v) {
    printf("  Diamond caught as virtual base: vb=%d\n", v.vb);
  }
  try {
    throw Diamond();
  } catch (VRight &r) {
    printf("  Diamond caught as VRight: r=%d vb=%d\n", r.r, r.vb);
  }
  check(live_errors == 0, "inheritance leaks");
}

// ---- 8. pointers ------------------------------------------------------------------

struct PointerTargets {
  Derived derived{21, 210};
  Multi multi;
  int number = 5;
  char text[13] = "mutable text";
  const Derived const_derived{22, 220};
  Unrelated unrelated{23};
};

static NOINLINE void throw_pointer(int k, PointerTargets &t) {
  switch (opaque(k)) {
  case 0: throw &t.derived;
  case 1: throw &t.multi;
  case 2: throw static_cast<char *>(t.text);
  case 3: throw &t.number;
  case 4: throw static_cast<Derived *>(nullptr);
  case 5: throw &t.const_derived;
  case 6: throw &t.unrelated;
  default: break;
  }
}

static void test_pointers() {
  printf("pointers\n");
  PointerTargets targets;
  try {
    throw_pointer(0, targets);
  } catch (Base *b) {
    printf("  Derived* caught as Base*: %s code=%d\n", b->name(), b->code);
  }
  try {
    throw_pointer(1, targets);
  } catch (Tagged *t) {
    printf("  Multi* caught as Tagged*: tag=%d\n", t->tag);
  }
  try {
    throw_pointer(2, targets);
  } catch (const char *s) {
    printf("  char* caught as const char*: %s\n", s);
  }
  try {
    throw_pointer(3, targets);
  } catch (void *p) {
    printf("  int* caught as void*: %d\n", *static_cast<int *>(p));
  }
  try {
    throw_pointer(4, targets);
  } catch (Base *b) {
    printf("  null Derived* caught as Base*: %s\n", b == nullptr ? "null" : "not null");
  }
  try {
    try {
      throw_pointer(5, targets);
    } catch (Derived *d) {
      printf("  wrong: const Derived* caught as Derived*\n");
    }
  } catch (const Base *b) {
    printf("  const Derived* caught as const Base*: code=%d\n", b->code);
  }
  try {
    try {
      throw_pointer(6, targets);
    } catch (Base *b) {
      printf("  wrong: Unrelated* caught as Base*\n");
    }
  } catch (...) {
    printf("  Unrelated* caught by ...\n");
  }
}

// ---- 9. many throws in a loop -----------------------------------------------------

static void test_loop() {
  printf("loop\n");
  long total = 0;
  int caught = 0;
  for (int i = 0; i < 10000; i++) {
    try {
      Guard g(i);
      if (i % 3 == 0)
        throw i;
      if (i % 3 == 1)
        throw Derived(i, 1);
      total += i;
    } catch (int v) {
      total += 2 * v;
      caught++;
    } catch (Base &b) {
      total += 3 * b.code;
      caught++;
      if (i % 1000 == 1)
        continue;
    }
    total += 1;
  }
  printf("  total=%ld caught=%d live guards=%d live errors=%d\n", total, caught, live_guards,
         live_errors);
  check(live_guards == 0 && live_errors == 0, "loop leaks");
}

int main() {
  printf("start uncaught=%d\n", std::uncaught_exceptions());
  test_deep_recursion();
  test_unwind_order();
  test_typed_catch();
  test_rethrow();
  test_nested();
  test_cleanups_only();
  test_by_value_and_inheritance();
  test_pointers();
  test_loop();
  printf("end uncaught=%d live guards=%d live errors=%d\n", std::uncaught_exceptions(), live_guards,
         live_errors);
  printf(failures == 0 ? "ALL OK\n" : "FAILURES: %d\n", failures);
  return failures == 0 ? 0 : 1;
}
