// libstdc++'s configuration for the rv32 build. Debian ships no libstdc++ for
// riscv64-unknown-elf, so the build uses the host's GCC 12 headers (the same GCC release as
// the cross compiler) with this wrapper in front of the host's bits/c++config.h: it takes
// the host's settings, then turns off what a bare-metal picolibc target lacks. Only headers
// are used (no libstdc++.a): TFLM needs templates, <new> and <cmath>, nothing compiled.
#ifndef TINYFACE_RV32_CXX_CONFIG_H
#define TINYFACE_RV32_CXX_CONFIG_H

#include_next <bits/c++config.h>

// No thread-local storage in libstdc++, no threads, no locales beyond "C".
#undef _GLIBCXX_HAVE_TLS
#undef _GLIBCXX_HAS_GTHREADS
#undef _GLIBCXX_USE_PTHREAD_RWLOCK_T
#undef _GLIBCXX_USE_NANOSLEEP
#undef _GLIBCXX_USE_SCHED_YIELD
#undef _GLIBCXX_HAVE_LINUX_FUTEX
#undef _GLIBCXX_HAVE_ALIGNED_ALLOC
#undef _GLIBCXX_HAVE_POSIX_MEMALIGN
#undef _GLIBCXX_HAVE_MEMALIGN
#undef _GLIBCXX_USE_CLOCK_MONOTONIC
#undef _GLIBCXX_USE_CLOCK_REALTIME
#undef _GLIBCXX_USE_GETTIMEOFDAY
#undef _GLIBCXX_HAVE_AT_QUICK_EXIT
#undef _GLIBCXX_HAVE_QUICK_EXIT
#undef _GLIBCXX_USE_DECIMAL_FLOAT
#undef _GLIBCXX_USE_INT128
#undef _GLIBCXX_USE_FLOAT128

#endif  // TINYFACE_RV32_CXX_CONFIG_H
