// The smallest runtime that runs this firmware as a Linux user program under
// qemu-riscv32: _start (stack, gp, tp, constructors), the Linux syscalls the rv32 platform
// needs (ecall with the syscall number in a7; riscv32 has only the 64-bit-time calls),
// picolibc's stdio streams (stderr: TFLM's DebugLog) and _exit. No heap: TFLM never
// allocates and the arena is static (platform_rv32.cc).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime_rv32.h"

long tf_rv32_syscall(long n, long a0, long a1, long a2, long a3, long a4) {
  register long r_a0 __asm__("a0") = a0;
  register long r_a1 __asm__("a1") = a1;
  register long r_a2 __asm__("a2") = a2;
  register long r_a3 __asm__("a3") = a3;
  register long r_a4 __asm__("a4") = a4;
  register long r_a7 __asm__("a7") = n;
  __asm__ volatile("ecall" : "+r"(r_a0) : "r"(r_a1), "r"(r_a2), "r"(r_a3), "r"(r_a4), "r"(r_a7) : "memory");
  return r_a0;
}

void _exit(int status) {
  for (;;) tf_rv32_syscall(TF_SYS_EXIT_GROUP, status, 0, 0, 0, 0);
}

// picolibc's abort() raises SIGABRT through kill(getpid(), sig): end the program with the
// shell's 128 + signal status and a line on stderr.
int getpid(void) { return 1; }
int kill(int pid, int sig) {
  (void)pid;
  static const char msg[] = "tinyface_rv32: aborted\n";
  tf_rv32_syscall(TF_SYS_WRITE, 2, (long)msg, sizeof(msg) - 1, 0, 0);
  _exit(128 + sig);
  return 0;
}

// picolibc's tinystdio: stdout and stderr both go to the host's stderr (fd 2), so a log
// line never lands in the protocol stream on stdout.
static int put_stderr(char c, FILE* f) {
  (void)f;
  tf_rv32_syscall(TF_SYS_WRITE, 2, (long)&c, 1, 0, 0);
  return (unsigned char)c;
}
static FILE g_stderr = FDEV_SETUP_STREAM(put_stderr, NULL, NULL, _FDEV_SETUP_WRITE);
FILE* const stdin = &g_stderr;
FILE* const stdout = &g_stderr;
FILE* const stderr = &g_stderr;

// Thread-local storage (picolibc keeps errno there; -ftls-model=local-exec): tp points at
// a copy of the PT_TLS segment (.tdata, then zeroed .tbss), found through the auxiliary
// vector like any static Linux program does. RISC-V's TLS variant I has no TCB before it.
#define TF_AT_PHDR 3
#define TF_AT_PHNUM 5
#define TF_PT_TLS 7
typedef struct {
  uint32_t p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align;
} tf_elf32_phdr_t;
static char g_tls[512] __attribute__((aligned(64)));

static void setup_tls(long* sp) {
  long argc = sp[0];
  long* p = sp + 1 + argc + 1;  // past argv and its NULL
  while (*p) p++;               // past envp
  const tf_elf32_phdr_t* phdr = NULL;
  long phnum = 0;
  for (p++; p[0] != 0; p += 2) {
    if (p[0] == TF_AT_PHDR) phdr = (const tf_elf32_phdr_t*)p[1];
    if (p[0] == TF_AT_PHNUM) phnum = p[1];
  }
  for (long i = 0; phdr != NULL && i < phnum; i++) {
    if (phdr[i].p_type != TF_PT_TLS) continue;
    if (phdr[i].p_memsz > sizeof(g_tls) || phdr[i].p_align > 64) _exit(126);
    memcpy(g_tls, (const void*)phdr[i].p_vaddr, phdr[i].p_filesz);
  }
  __asm__ volatile("mv tp, %0" : : "r"(g_tls));
}

extern void (*__preinit_array_start[])(void);
extern void (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

int main(int argc, char** argv);

__attribute__((used, noreturn)) void tf_rv32_start(long* sp) {
  setup_tls(sp);
  for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) (*f)();
  for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
  _exit(main((int)sp[0], (char**)(sp + 1)));
}

// The Linux entry point: sp holds argc, then argv. gp first (linker relaxation uses it).
__asm__(
    ".section .text._start,\"ax\",@progbits\n"
    ".global _start\n"
    "_start:\n"
    ".option push\n"
    ".option norelax\n"
    "  la gp, __global_pointer$\n"
    ".option pop\n"
    "  mv a0, sp\n"
    "  andi sp, sp, -16\n"
    "  call tf_rv32_start\n");
