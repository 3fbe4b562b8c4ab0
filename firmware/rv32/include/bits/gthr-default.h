// Single-threaded gthreads for the rv32 build (GCC's gthr-single.h): the firmware runs one
// thread, and picolibc has no pthreads.
#include <bits/gthr-single.h>
