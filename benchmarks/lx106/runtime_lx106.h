// Linux syscalls for the lx106 build under qemu-xtensa (runtime_lx106.c), in place of
// firmware/rv32/runtime_rv32.h: lx106/Makefile compiles ../rv32/platform_rv32.cc with
// -DTF_RUNTIME_HEADER='"runtime_lx106.h"', so this header defines everything that file takes
// from runtime_rv32.h. Numbers from the Linux kernel's arch/xtensa/kernel/syscalls/syscall.tbl
// (xtensa has its own table; the 64-bit-time calls 403..414 use the generic numbers, as on
// every 32-bit architecture).
#ifndef TINYFACE_RUNTIME_LX106_H
#define TINYFACE_RUNTIME_LX106_H

#ifdef __cplusplus
extern "C" {
#endif

#define TF_SYS_CLOSE 9
#define TF_SYS_READ 12
#define TF_SYS_WRITE 13
#define TF_SYS_FSYNC 26
#define TF_SYS_EXIT_GROUP 119
#define TF_SYS_PRCTL 130
#define TF_SYS_RT_SIGACTION 226
#define TF_SYS_OPENAT 288
#define TF_SYS_UNLINKAT 291
#define TF_SYS_RENAMEAT2 336
#define TF_SYS_CLOCK_GETTIME64 403
#define TF_SYS_CLOCK_NANOSLEEP64 407
#define TF_SYS_PPOLL64 414
// The instruction-count plugin (firmware/qemu/insn_count.c) is told xtensa's read number
// (read=12): benchmarks/xtensa_kernels.py reads TF_SYS_READ from this header.

// xtensa's open flags (arch/xtensa/include/uapi/asm/fcntl.h: the MIPS values).
#define TF_O_WRONLY 0x0001
#define TF_O_CREAT 0x0100
#define TF_O_TRUNC 0x0200

#define TF_AT_FDCWD (-100)
#define TF_EINTR 4
#define TF_EIO 5
#define TF_EAGAIN 11

// The raw syscall: returns the result, or -errno.
long tf_lx106_syscall(long n, long a0, long a1, long a2, long a3, long a4);
// platform_rv32.cc's name for it.
#define tf_rv32_syscall tf_lx106_syscall

// The program's name in platform_rv32.cc's messages.
#define TF_PROGRAM_NAME "tinyface_lx106"

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // TINYFACE_RUNTIME_LX106_H
