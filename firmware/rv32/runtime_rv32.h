// Linux syscalls for the rv32 build under qemu-riscv32 (runtime_rv32.c). Numbers from the
// generic syscall table (include/uapi/asm-generic/unistd.h) that riscv32 uses.
#ifndef TINYFACE_RUNTIME_RV32_H
#define TINYFACE_RUNTIME_RV32_H

#ifdef __cplusplus
extern "C" {
#endif

#define TF_SYS_UNLINKAT 35
#define TF_SYS_OPENAT 56
#define TF_SYS_CLOSE 57
#define TF_SYS_READ 63
#define TF_SYS_WRITE 64
#define TF_SYS_FSYNC 82
#define TF_SYS_EXIT_GROUP 94
#define TF_SYS_RT_SIGACTION 134
#define TF_SYS_PRCTL 167
#define TF_SYS_RENAMEAT2 276
#define TF_SYS_CLOCK_GETTIME64 403
#define TF_SYS_CLOCK_NANOSLEEP64 407
#define TF_SYS_PPOLL64 414

// The generic open flags (include/uapi/asm-generic/fcntl.h).
#define TF_O_WRONLY 0x1
#define TF_O_CREAT 0x40
#define TF_O_TRUNC 0x200

#define TF_AT_FDCWD (-100)
#define TF_EINTR 4
#define TF_EIO 5
#define TF_EAGAIN 11

// The raw syscall: returns the result, or -errno.
long tf_rv32_syscall(long n, long a0, long a1, long a2, long a3, long a4);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // TINYFACE_RUNTIME_RV32_H
