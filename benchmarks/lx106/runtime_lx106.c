// The smallest runtime that runs this firmware as a Linux user program under qemu-xtensa
// -cpu lx106 (the ESP8266's core, the nearest Xtensa that Debian's GCC and QEMU both know):
// _start (stack, constructors), the Linux syscalls platform_rv32.cc needs (the `syscall`
// instruction: number in a2, arguments in a6, a3, a4, a5, a8, a9, result in a2), picolibc's
// stdio streams (stderr: TFLM's DebugLog) and _exit. The call0 ABI (LX106 has no register
// windows); no thread-local storage (picolibc is built without it for this core, which has
// no THREADPTR register). No heap: TFLM never allocates and the arena is static.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime_lx106.h"

long tf_lx106_syscall(long n, long a0, long a1, long a2, long a3, long a4) {
  register long r_a2 __asm__("a2") = n;
  register long r_a6 __asm__("a6") = a0;
  register long r_a3 __asm__("a3") = a1;
  register long r_a4 __asm__("a4") = a2;
  register long r_a5 __asm__("a5") = a3;
  register long r_a8 __asm__("a8") = a4;
  __asm__ volatile("syscall" : "+r"(r_a2) : "r"(r_a6), "r"(r_a3), "r"(r_a4), "r"(r_a5), "r"(r_a8) : "memory");
  return r_a2;
}

void _exit(int status) {
  for (;;) tf_lx106_syscall(TF_SYS_EXIT_GROUP, status, 0, 0, 0, 0);
}

// picolibc's abort() raises SIGABRT through kill(getpid(), sig): end the program with the
// shell's 128 + signal status and a line on stderr.
int getpid(void) { return 1; }
int kill(int pid, int sig) {
  (void)pid;
  static const char msg[] = "tinyface_lx106: aborted\n";
  tf_lx106_syscall(TF_SYS_WRITE, 2, (long)msg, sizeof(msg) - 1, 0, 0);
  _exit(128 + sig);
  return 0;
}

// picolibc's tinystdio: stdout and stderr both go to the host's stderr (fd 2), so a log
// line never lands in the protocol stream on stdout.
static int put_stderr(char c, FILE* f) {
  (void)f;
  tf_lx106_syscall(TF_SYS_WRITE, 2, (long)&c, 1, 0, 0);
  return (unsigned char)c;
}
static FILE g_stderr = FDEV_SETUP_STREAM(put_stderr, NULL, NULL, _FDEV_SETUP_WRITE);
FILE* const stdin = &g_stderr;
FILE* const stdout = &g_stderr;
FILE* const stderr = &g_stderr;

extern void (*__preinit_array_start[])(void);
extern void (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
// This GCC emits static constructors into .ctors; lx106/Makefile defines its bounds.
extern void (*__tf_ctors_start[])(void);
extern void (*__tf_ctors_end[])(void);

int main(int argc, char** argv);

__attribute__((used, noreturn)) void tf_lx106_start(long* sp) {
  for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) (*f)();
  for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
  for (void (**f)(void) = __tf_ctors_end; f > __tf_ctors_start;) (*--f)();  // last first, as crtend's does
  _exit(main((int)sp[0], (char**)(sp + 1)));
}

// The Linux entry point: a1 (sp) holds argc, then argv. The first argument goes in a2
// (call0 ABI); the call goes through a literal so that it reaches anywhere (-mlongcalls).
__asm__(
    ".section .text._start,\"ax\",@progbits\n"
    ".literal_position\n"
    ".literal .Ltf_lx106_start_addr, tf_lx106_start\n"
    ".global _start\n"
    ".type _start, @function\n"
    ".align 4\n"
    "_start:\n"
    "  mov a2, a1\n"
    "  movi a3, -16\n"
    "  and a1, a1, a3\n"
    "  l32r a0, .Ltf_lx106_start_addr\n"
    "  callx0 a0\n");
