// libstdc++'s OS settings for a newlib-like C library (picolibc), after GCC's
// config/os/newlib/os_defines.h: nothing glibc-specific (the host's version includes
// <features.h> and tests glibc versions).
#ifndef _GLIBCXX_OS_DEFINES
#define _GLIBCXX_OS_DEFINES 1
#endif
